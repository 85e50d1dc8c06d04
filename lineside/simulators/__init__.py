"""Simulated devices, named like the drivers they stand in for; scenarios script them.

``plc`` serves Modbus TCP and RTU (over a TCP socket) for the modbus drivers.
"""

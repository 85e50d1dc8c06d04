"""Pure domain code: no SQLite, no paho, no clock. Everything here is a function of its inputs."""

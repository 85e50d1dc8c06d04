"""The technician's command line: `lineside COMMAND --help` documents every option.

One table of commands (table.py), filled by the modules that run them: agent.py (check,
run, simulate, status, tail, demo), books.py (stock, tx, report), postings.py (complete,
receive, count, order, reverse, held) and central's own cli; app.py builds the parser.
"""

from lineside.agent.cli.app import build_parser, main

__all__ = ["build_parser", "main"]

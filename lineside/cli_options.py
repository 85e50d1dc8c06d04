"""What `lineside` and `lineside central` share on the command line: the parser, exit
codes and the config option. Here, not in either CLI, so that neither imports the other's
package to get them."""

from __future__ import annotations

import argparse
import os
import sys
from typing import NoReturn

EXIT_OK, EXIT_OTHER, EXIT_BAD_INPUT = 0, 1, 2


class Parser(argparse.ArgumentParser):
    """Bad arguments exit EXIT_BAD_INPUT, the code a refused config gets."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_BAD_INPUT)


def add_config(p: argparse.ArgumentParser, variable: str, what: str = "config file") -> None:
    """`-c/--config FILE`, defaulting to the environment variable as it is when the parser
    is built (a test or a shell may set it after import)."""
    p.add_argument(
        "-c",
        "--config",
        default=os.environ.get(variable),
        help=f"{what} (default: ${variable})",
    )

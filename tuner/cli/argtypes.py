"""argparse value types shared by the CLI's subcommands."""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn


class OneLineParser(argparse.ArgumentParser):
    """argparse, with a usage error as one line (the command, what is wrong, what is allowed) and exit 2:
    the usage synopsis argparse prints first is ``--help``'s job."""

    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: error: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(2)


def positive_int(text: str) -> int:
    """An integer >= 1, or argparse's usage error (exit 2) naming the value."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def add_command(sub: argparse._SubParsersAction, name: str, help: str, example: str) -> argparse.ArgumentParser:
    """A subcommand whose ``--help`` ends with ``example`` (one or more command lines)."""
    lines = "\n".join(f"  {line}" for line in example.strip().splitlines())
    return sub.add_parser(name, help=help, description=help, epilog=f"example:\n{lines}",
                          formatter_class=argparse.RawDescriptionHelpFormatter)

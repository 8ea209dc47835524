"""CLI subcommands over the analysis package: compare, calibrate, report."""

from __future__ import annotations

import argparse


def add_analysis_commands(sub: argparse._SubParsersAction) -> None:
    """Register the analysis subcommands on the ``mbrl-tune`` parser."""

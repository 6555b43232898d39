"""The ``scaleahead`` command: wiring only.

Each sub-command lives in its own module that exposes ``add_parser(subparsers)``
and sets ``func`` on its parser; ``main`` parses and dispatches. Errors that a
user can fix are reported as one clear message and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from controller import __version__
from controller.errors import UserError


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser with every sub-command registered."""
    from controller import backtestcli, configcli, forecastcli, runcli, simcli

    parser = argparse.ArgumentParser(prog="scaleahead", description="Predictive autoscaling for Kubernetes.")
    parser.add_argument("--version", action="version", version=f"scaleahead {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (runcli, simcli, backtestcli, forecastcli, configcli):
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script. Returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"scaleahead: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())

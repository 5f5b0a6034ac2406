"""The ``minilottery`` command: one subcommand per module in ``minilottery/commands``.

Each command module exposes ``register(subparsers)``, which adds its parser and sets ``func`` to a
``run(args) -> int``. Errors a user can cause (bad options, missing data, no GPU) end in one line on stderr
and a non-zero exit code, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from minilottery import __version__
from minilottery.backend import DeviceError
from minilottery.data import DataError

# Order here is the order of ``minilottery --help``.
COMMANDS = ["demo", "train", "imp", "trials", "report", "plot", "check-paper", "data", "bench"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="minilottery",
        description="Find lottery tickets (Frankle & Carbin, ICLR 2019) with a NumPy/CuPy network written by hand.",
    )
    parser.add_argument("--version", action="version", version=f"minilottery {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"minilottery.commands.{name.replace('-', '_')}")
        except ModuleNotFoundError as exc:
            if exc.name != f"minilottery.commands.{name.replace('-', '_')}":
                raise
            continue  # a command not built yet
        module.register(subparsers)
    for command in subparsers.choices.values():  # descriptions come from docstrings: drop reST's ``quotes``
        command.description = (command.description or "").replace("``", "")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except (DeviceError, DataError, ValueError) as exc:
        print(f"minilottery {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"minilottery {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

"""``--help`` shows every option's default, for every command: nobody should start a 12-round run by surprise.

The check walks every subparser of ``build_parser()`` (a command added later is checked too) and asks each
option that takes a value to say "default" in its help, unless it is required; an option whose value a preset
can set says so too (``imp`` and ``trials``). Flags (``--json``, ``--overwrite``, ...) are off unless given and
need no word.
"""

from __future__ import annotations

import argparse

import pytest

from minilottery.lab.cli import build_parser
from minilottery.lab.presets import PRESETS


def subparsers(parser: argparse.ArgumentParser, path: str = "minilottery"):
    """(path, parser) for ``parser`` and every subparser below it, depth first ("minilottery data download")."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from subparsers(sub, f"{path} {name}")


def options_with_values(parser: argparse.ArgumentParser):
    """The optional actions that take a value and are shown in ``--help``."""
    for action in parser._actions:
        if not action.option_strings or action.help == argparse.SUPPRESS or action.nargs == 0:
            continue  # a positional, a hidden alias, or a flag (store_true, --help, --version)
        yield action


PARSERS = dict(subparsers(build_parser()))


def formatted_help(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    """The action's help as ``--help`` prints it (``%(default)s`` filled in), on one line."""
    return " ".join(parser._get_formatter()._expand_help(action).split())


@pytest.mark.parametrize("path", PARSERS)
def test_every_option_shows_its_default(path):
    parser = PARSERS[path]
    missing = [action.option_strings[0] for action in options_with_values(parser)
               if not action.required and "default" not in formatted_help(parser, action)]
    assert not missing, f"`{path} --help` does not show the default of {', '.join(missing)}"


PRESET_FIELDS = sorted({key for preset in PRESETS.values() for key in preset})


@pytest.mark.parametrize("command", ["imp", "trials"])
def test_options_a_preset_sets_say_so(command):
    parser = PARSERS[f"minilottery {command}"]
    by_dest = {action.dest: action for action in options_with_values(parser)}
    silent = [by_dest[field].option_strings[0] for field in PRESET_FIELDS
              if "--preset" not in formatted_help(parser, by_dest[field])]
    assert not silent, f"`minilottery {command} --help`: {', '.join(silent)} do not say a preset sets them"


def test_the_walk_reaches_every_command_and_the_data_actions():
    assert {"minilottery imp", "minilottery trials", "minilottery demo", "minilottery data download",
            "minilottery data check", "minilottery bench"} <= set(PARSERS)
    rounds = next(a for a in PARSERS["minilottery imp"]._actions if a.dest == "rounds")
    assert "default: 12" in formatted_help(PARSERS["minilottery imp"], rounds)

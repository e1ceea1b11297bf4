"""Sphinx extension: ``.. wsgisession-cli::`` renders the command-line reference.

Built from :func:`wsgisession.cli.build_parser`, the parser the command
itself uses, so every command and flag is documented with its own help
text and the page cannot drift from the code. Each command gets the anchor
``cli-<command>`` and each flag ``cli-<command>-<flag>`` (``cli-check-config``).
"""

from __future__ import annotations

import argparse
from typing import Any

from doctable import cell, table
from docutils import nodes
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective

from wsgisession.cli import build_parser

HEADERS = ("Flag", "Default", "Meaning")
WIDTHS = (30, 16, 54)


def commands() -> dict[str, argparse.ArgumentParser]:
    """The subcommands of ``wsgisession``, by name, in the parser's order."""
    for action in build_parser()._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def command_help() -> dict[str, str]:
    """Each subcommand's one-line help, as ``wsgisession --help`` shows it."""
    for action in build_parser()._actions:
        if isinstance(action, argparse._SubParsersAction):
            return {
                choice.dest: choice.help or "" for choice in action._choices_actions
            }
    return {}


def flags(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    """The optional arguments of a parser, but --help and hidden (refused) ones."""
    return [
        action
        for action in parser._actions
        if action.option_strings
        and not isinstance(action, argparse._HelpAction)
        and action.help != argparse.SUPPRESS
    ]


def _default(action: argparse.Action) -> str:
    if action.default is None or action.default == argparse.SUPPRESS:
        return ""
    return str(action.default)


class CliReference(SphinxDirective):
    """The directive: per command, its usage and a table of its flags."""

    has_content = False

    def run(self) -> list[nodes.Node]:
        helps = command_help()
        result: list[nodes.Node] = []
        for name, parser in commands().items():
            title = nodes.paragraph(ids=[f"cli-{name}"])
            title += nodes.strong("", "", nodes.literal(name, f"wsgisession {name}"))
            title += nodes.Text(f": {helps.get(name, '')}.")
            result.append(title)
            usage = parser.format_usage().removeprefix("usage: ").strip()
            result.append(nodes.literal_block(usage, " ".join(usage.split())))
            result.append(self._table(name, flags(parser)))
        return result

    def _table(self, command: str, actions: list[argparse.Action]) -> nodes.table:
        rows = []
        for action in actions:
            flag = action.option_strings[-1]
            metavar = (
                "" if action.nargs == 0 else f" {action.metavar or action.dest.upper()}"
            )
            name_cell = cell(nodes.literal(flag + metavar, flag + metavar))
            name_cell["ids"].append(f"cli-{command}-{flag.lstrip('-')}")
            row = nodes.row()
            row += name_cell
            default = _default(action)
            row += cell(nodes.literal(default, default)) if default else cell()
            row += cell(nodes.Text(action.help or ""))
            rows.append(row)
        return table(HEADERS, WIDTHS, rows, "wsgisession-cli")


def setup(app: Sphinx) -> dict[str, Any]:
    """Register the directive with Sphinx."""
    app.add_directive("wsgisession-cli", CliReference)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}

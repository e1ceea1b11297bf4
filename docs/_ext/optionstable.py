"""Sphinx extension: ``.. wsgisession-options::`` renders the option reference.

The table is built from :func:`wsgisession.config.describe_options`, the
same schema that checks keyword arguments and parses ini files, so the
documentation cannot drift from the code. Each row gets an anchor
(``option-<name>``) and is registered as a ``confval`` of Sphinx's standard
domain, so pages can link to an option with ``:confval:`cookie_age```.

Options of the directive: ``:group: middleware`` (the middleware's options),
``:group: store`` (the store keys of ini files) or ``:group: all`` (the
default).
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any, ClassVar, cast

from doctable import cell, table
from docutils import nodes
from docutils.parsers.rst import directives
from sphinx.application import Sphinx
from sphinx.domains.std import StandardDomain
from sphinx.util.docutils import SphinxDirective

from wsgisession.config import OptionInfo, Settings, describe_options
from wsgisession.storespec import store_keys

GROUPS = ("all", "middleware", "store")
HEADERS = ("Option / ini key", "Type", "Default", "Meaning")
WIDTHS = (22, 18, 12, 48)


def format_default(value: Any) -> str:
    """A default as one writes it in an ini file (``none``, ``true``, ``3600``)."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (tuple, list)):
        return " ".join(map(str, value)) if value else "(empty list)"
    return str(value)


def _group_names(group: str) -> set[str]:
    middleware = {f.name for f in fields(Settings)}
    stores = set(store_keys())  # as each store declares its keys
    return {"middleware": middleware, "store": stores}.get(group, middleware | stores)


class OptionsTable(SphinxDirective):
    """The directive: one table row per option of the chosen group."""

    has_content = False
    option_spec: ClassVar[dict[str, Any]] = {
        "group": lambda arg: directives.choice(arg, GROUPS)
    }

    def run(self) -> list[nodes.Node]:
        names = _group_names(self.options.get("group", "all"))
        rows = [self._row(info) for info in describe_options() if info.name in names]
        return [table(HEADERS, WIDTHS, rows, "wsgisession-options")]

    def _row(self, info: OptionInfo) -> nodes.row:
        anchor = f"option-{info.name}"
        name_cell = cell(nodes.literal(info.name, info.name))
        name_cell["ids"].append(anchor)
        std = cast(StandardDomain, self.env.get_domain("std"))
        std.note_object("confval", info.name, anchor, location=self.get_location())
        row = nodes.row()
        row += name_cell
        row += cell(nodes.Text(info.kind))
        default = format_default(info.default)
        row += cell(nodes.literal(default, default))
        row += cell(nodes.Text(info.help))
        return row


def setup(app: Sphinx) -> dict[str, Any]:
    """Register the directive with Sphinx."""
    app.add_directive("wsgisession-options", OptionsTable)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}

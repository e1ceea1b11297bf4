"""A docutils table with a header row, shared by the generated references."""

from __future__ import annotations

from collections.abc import Sequence

from docutils import nodes


def cell(*children: nodes.Node) -> nodes.entry:
    """One table cell holding a paragraph of ``children``."""
    entry = nodes.entry()
    entry += nodes.paragraph("", "", *children)
    return entry


def table(
    headers: Sequence[str], widths: Sequence[int], rows: Sequence[nodes.row], css: str
) -> nodes.table:
    """A table of ``rows`` under a header row of ``headers``."""
    result = nodes.table(classes=[css])
    group = nodes.tgroup(cols=len(headers))
    result += group
    for width in widths:
        group += nodes.colspec(colwidth=width)
    head = nodes.thead()
    header_row = nodes.row()
    for title in headers:
        header_row += cell(nodes.Text(title))
    head += header_row
    group += head
    body = nodes.tbody()
    for row in rows:
        body += row
    group += body
    return result

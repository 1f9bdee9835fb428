"""Markdown tables: the one writer of every table that the summaries, the report and the
benches print, so that a cell holding ``|`` (``|score - raw|``) stays one cell."""

from __future__ import annotations

from collections.abc import Iterable, Sequence


def cell(value: object) -> str:
    """``value`` as one table cell: its pipes escaped, its line breaks made spaces."""
    return str(value).replace("|", "\\|").replace("\n", " ")


def row(cells: Iterable[object]) -> str:
    """One table row."""
    return "| " + " | ".join(cell(c) for c in cells) + " |"


def table(header: Sequence[object], rows: Iterable[Iterable[object]]) -> list[str]:
    """The lines of a table: its header, the rule under it, then one line per row."""
    return [row(header), "|" + " --- |" * len(header), *(row(r) for r in rows)]

"""Reports: metrics rows as an aligned text table (accuracies as percentages)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["format_table"]

_PERCENT_KEYS = ("top1", "pass2", "pass2_official", "pixel", "shape")


def _cell(row: dict[str, Any], column: str) -> str:
    value = row.get(column)
    if value is None:
        return "-"
    if column in _PERCENT_KEYS:
        return f"{100.0 * float(value):.1f}"
    if column == "seconds":
        return f"{float(value):.1f}"
    return str(value)


def format_table(
    rows: Sequence[dict[str, Any]],
    columns: Sequence[str] = ("search", "top1", "pass2", "pixel", "shape", "evaluations"),
) -> str:
    """Formats metrics dicts as an aligned text table.

    Accuracies (``top1``, ``pass2``, ``pixel``, ``shape``, stored as fractions) are shown as
    percentages with one decimal; missing values as ``-``. The first column is left-aligned,
    the others right-aligned.

    Args:
        rows: metrics dicts, e.g. ``[out.metrics for out in outputs]``.
        columns: the columns to show, in order.

    Returns:
        The table: a header line, a rule and one line per row (no trailing newline).

    Example:
        >>> print(format_table([{"search": "mean", "top1": 0.5, "pass2": 0.5, "pixel": 0.9,
        ...                      "shape": 1.0, "evaluations": 1}]))
        search  top1  pass2  pixel  shape  evaluations
        ------  ----  -----  -----  -----  -----------
        mean    50.0   50.0   90.0  100.0            1
    """
    header = list(columns)
    body = [[_cell(row, column) for column in columns] for row in rows]
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        parts = [
            cell.ljust(width) if i == 0 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  ".join(parts).rstrip()

    rule = ["-" * width for width in widths]
    return "\n".join([line(header), line(rule), *(line(cells) for cells in body)])

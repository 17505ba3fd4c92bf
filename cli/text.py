"""Small text helpers the commands print with: tables, indents, values."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

__all__ = ["indent", "render_value", "table", "text"]


def text(value: Any, missing: str = "-") -> str:
    return missing if value is None else str(value)


def render_value(value: Any) -> str:
    if value is None:
        return "(absent)"
    if isinstance(value, list):
        return "[" + ", ".join(str(item) for item in value) + "]"
    return str(value)


def table(rows: Iterable[Sequence[str]]) -> list[str]:
    rows = list(rows)
    if not rows:
        return []
    widths = [max(len(row[i]) for row in rows if i < len(row)) for i in range(max(map(len, rows)))]
    return ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in rows]


def indent(lines: Iterable[str]) -> list[str]:
    return [f"  {line}" for line in lines]

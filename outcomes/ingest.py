"""Outcomes in: validation of what ``POST /outcomes`` and ``streamflow outcomes load`` take.

One outcome is ``{"request_id": ..., "churned": true, "observed_at": ...}`` or the same with
``customer_id`` instead of ``request_id`` (exactly one of the two), optionally ``"row": n`` with
a request id (which row of a batch answer; 0 when absent). ``observed_at`` is an ISO 8601 time
(a time without a zone is UTC) or Unix seconds. Nothing else is accepted, so a misspelt field is
an error rather than an outcome silently missing its key.

A batch is all or nothing: every bad row is named (its index and the field), and a batch with
any bad row writes nothing. The join rule is in outcomes/join.py.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from outcomes.records import Outcome

__all__ = ["FIELDS", "IngestError", "Problem", "parse_batch", "parse_item", "read_rows"]

FIELDS = ("request_id", "customer_id", "row", "churned", "observed_at")
MAX_KEY_LENGTH = 256
TRUE_WORDS = {"true", "1", "yes"}
FALSE_WORDS = {"false", "0", "no"}


@dataclass(frozen=True, slots=True)
class Problem:
    row: int  # index in the batch (0-based), or line number in a file (1-based)
    field: str  # the field at fault ("" for the row as a whole)
    message: str

    def __str__(self) -> str:
        where = f"row {self.row}" + (f", {self.field}" if self.field else "")
        return f"{where}: {self.message}"

    def as_dict(self) -> dict[str, object]:
        return {"row": self.row, "field": self.field, "message": self.message}


class IngestError(ValueError):
    """A batch with bad rows (all of them named); nothing of it is written."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        first = "; ".join(str(p) for p in problems[:3])
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        super().__init__(f"{len(problems)} invalid outcome rows, nothing written: {first}{more}")


def parse_batch(document: Any) -> list[Outcome]:
    """A decoded JSON document (a list of outcome objects) → outcomes, or IngestError naming
    every bad row."""
    if not isinstance(document, list):
        raise IngestError([Problem(0, "", "the body must be a JSON list of outcomes")])
    outcomes: list[Outcome] = []
    problems: list[Problem] = []
    for index, item in enumerate(document):
        parsed = parse_item(item, index, problems)
        if parsed is not None:
            outcomes.append(parsed)
    if problems:
        raise IngestError(problems)
    return outcomes


def parse_item(item: Any, row: int, problems: list[Problem]) -> Outcome | None:
    """One outcome, or None with its problems appended (every bad field of the row)."""
    if not isinstance(item, dict):
        problems.append(Problem(row, "", "an outcome must be an object"))
        return None
    found = len(problems)
    unknown = sorted(set(item) - set(FIELDS))
    for name in unknown:
        problems.append(Problem(row, name, f"unknown field; allowed: {', '.join(FIELDS)}"))
    request_id = _key(item, "request_id", row, problems)
    customer_id = _key(item, "customer_id", row, problems)
    if (request_id is None) == (customer_id is None) and len(problems) == found:
        problems.append(
            Problem(row, "request_id", "give exactly one of request_id and customer_id")
        )
    index = 0
    if "row" in item:
        value = item["row"]
        if isinstance(value, str) and value.strip().isdigit():  # CSV cells arrive as text
            value = int(value)
        if customer_id is not None:
            problems.append(Problem(row, "row", "row goes with request_id only"))
        elif isinstance(value, bool) or not isinstance(value, int) or value < 0:
            problems.append(Problem(row, "row", f"must be an integer >= 0, got {value!r}"))
        else:
            index = value
    churned = _churned(item, row, problems)
    observed_at = _time(item, row, problems)
    if len(problems) > found or churned is None or observed_at is None:
        return None
    return Outcome(churned, observed_at, request_id, customer_id, index)


def _key(item: dict[str, Any], name: str, row: int, problems: list[Problem]) -> str | None:
    if name not in item or item[name] is None:
        return None
    value = item[name]
    if isinstance(value, bool) or not isinstance(value, str | int):
        problems.append(Problem(row, name, f"must be a string, got {type(value).__name__}"))
        return None
    text = str(value)
    if not text or len(text) > MAX_KEY_LENGTH:
        problems.append(Problem(row, name, f"must be 1 to {MAX_KEY_LENGTH} characters"))
        return None
    return text


def _churned(item: dict[str, Any], row: int, problems: list[Problem]) -> bool | None:
    if "churned" not in item:
        problems.append(Problem(row, "churned", "missing"))
        return None
    value = item["churned"]
    if isinstance(value, bool):
        return value
    if isinstance(value, str):  # CSV cells arrive as text
        word = value.strip().lower()
        if word in TRUE_WORDS:
            return True
        if word in FALSE_WORDS:
            return False
    problems.append(Problem(row, "churned", f"must be true or false, got {value!r}"))
    return None


def _time(item: dict[str, Any], row: int, problems: list[Problem]) -> float | None:
    if "observed_at" not in item:
        problems.append(Problem(row, "observed_at", "missing"))
        return None
    value = item["observed_at"]
    seconds: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip()
        try:
            seconds = float(text)
        except ValueError:
            try:
                moment = datetime.fromisoformat(text)
            except ValueError:
                seconds = None
            else:
                if moment.tzinfo is None:
                    moment = moment.replace(tzinfo=UTC)
                seconds = moment.timestamp()
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        problems.append(
            Problem(row, "observed_at", f"must be an ISO 8601 time or Unix seconds, got {value!r}")
        )
        return None
    return seconds


def read_rows(lines: Iterable[str], fmt: str) -> Iterator[tuple[int, Any]]:
    """(line number, decoded item) of a CSV (header row first) or JSON lines file, one at a
    time: a file of any size in bounded memory. A line that is not JSON yields a ValueError as
    its item, for the caller to report with the others."""
    if fmt == "csv":
        reader = csv.DictReader(iter(lines))
        for record in reader:
            item: dict[str, Any] = {
                name: value
                for name, value in record.items()
                if name is not None and value not in (None, "")
            }
            if None in record:
                item["\u2026"] = "extra cells"  # more cells than the header names
            yield reader.line_num, item
        return
    for number, line in enumerate(lines, start=1):
        text = line.strip()
        if not text:
            continue
        try:
            yield number, orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            yield number, ValueError(f"not JSON: {exc}")


def sniff_format(name: str, first: str) -> str:
    """csv or jsonl, from the file name, else from its first line."""
    lower = name.lower()
    if lower.endswith(".csv"):
        return "csv"
    if lower.endswith((".jsonl", ".ndjson", ".json")):
        return "jsonl"
    return "jsonl" if first.lstrip().startswith("{") else "csv"


def csv_text(outcomes: Iterable[dict[str, Any]]) -> str:
    """Outcomes as CSV with the header (for tests and examples)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(FIELDS), extrasaction="ignore")
    writer.writeheader()
    for item in outcomes:
        writer.writerow(item)
    return out.getvalue()

"""The decision log: one JSON line per check (of new samples) and per operator command, appended.

It is the rollout's memory as well as its explanation: a restarted controller reads its step,
baselines and failure count back from here, and ``streamflow rollout pause|resume|abort`` speak
to a running controller by appending a line it reads at its next check.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from vocabulary.decision_log import decision_log_path

__all__ = ["CONTROLLER", "OPERATOR", "DecisionLog", "default_log_path"]

CONTROLLER = "controller"
OPERATOR = "operator"


def default_log_path(routing_file: str | Path) -> Path:
    """Next to routing.yaml: routing.yaml -> routing.rollout.jsonl (where the status page
    reads it too)."""
    return decision_log_path(routing_file)


class DecisionLog:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._offset = 0

    def append(self, entry: dict[str, Any], *, at: float | None = None) -> dict[str, Any]:
        stamp = datetime.fromtimestamp(at, UTC) if at is not None else datetime.now(UTC)
        line = {"time": stamp.isoformat(timespec="milliseconds"), **entry}
        data = (json.dumps(line, sort_keys=False) + "\n").encode()
        # One write of a whole line with O_APPEND: a controller and an operator's command
        # appending at once do not interleave inside a line.
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
        return line

    def read(self) -> list[dict[str, Any]]:
        """Every entry; remembers the end, so ``follow`` returns only what comes after."""
        entries, self._offset = self._read_from(0)
        return entries

    def follow(self) -> list[dict[str, Any]]:
        """Entries appended since the last ``read`` or ``follow``."""
        entries, self._offset = self._read_from(self._offset)
        return entries

    def _read_from(self, offset: int) -> tuple[list[dict[str, Any]], int]:
        try:
            with open(self.path, "rb") as handle:
                handle.seek(offset)
                data = handle.read()
        except FileNotFoundError:
            return [], 0
        complete = data[: data.rfind(b"\n") + 1]  # a line still being written waits
        entries = []
        for raw in complete.splitlines():
            try:
                entry = json.loads(raw)
            except ValueError:
                continue  # a torn line from a crash mid-write: skipped, the rest still counts
            if isinstance(entry, dict):
                entries.append(entry)
        return entries, offset + len(complete)

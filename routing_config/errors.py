"""What goes wrong with a routing file: an invalid document, or an edit that cannot be made."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["ConfigError", "ConfigIssue", "RoutingEditError"]


@dataclass(frozen=True, slots=True)
class ConfigIssue:
    path: str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = f" (line {self.line})" if self.line is not None else ""
        return f"{self.path}: {self.message}{where}"


class ConfigError(Exception):
    """An invalid routing.yaml. ``messages`` are ready for logs and /routing."""

    def __init__(self, issues: Sequence[ConfigIssue], source: str | None = None) -> None:
        self.issues = tuple(issues)
        self.source = source
        self.messages = [str(issue) for issue in self.issues]
        origin = f" in {source}" if source else ""
        super().__init__(f"invalid routing config{origin}: " + "; ".join(self.messages))


class RoutingEditError(Exception):
    """An edit of the routing file that was refused or failed; nothing was written. ``lines``
    are for a person (the CLI prints them on stderr), ``code`` an exit status for the CLI."""

    def __init__(self, *lines: str, code: int = 1) -> None:
        super().__init__("\n".join(lines))
        self.lines = lines
        self.code = code

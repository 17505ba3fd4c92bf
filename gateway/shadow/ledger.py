"""One gateway process's shadow comparisons: the report's tallies and the metrics' tallies.

The report counts since the shadow section of routing.yaml last changed (a new candidate or a new
percentage starts a fresh comparison); the Prometheus series count since the process started and
never go back, as counters must. Both are fed by the same call, on the event loop thread.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from gateway.shadow.compare import RowComparison
from gateway.shadow.tally import PairTally


def section_key(shadow: dict[str, Any] | None) -> str:
    """A short fingerprint of the shadow section; '' when shadowing is off."""
    if shadow is None:
        return ""
    text = json.dumps(shadow, sort_keys=True, separators=(",", ":"))
    return hashlib.blake2b(text.encode(), digest_size=6).hexdigest()


class ShadowLedger:
    def __init__(self) -> None:
        self.section = ""
        self.since: str | None = None
        self.pairs: dict[str, PairTally] = {}  # primary version -> since the section changed
        # (primary, shadow) -> since start; versions come from routing.yaml, never a request.
        self.cumulative: dict[tuple[str, str], PairTally] = {}

    def follow(self, section: str, since: str | None = None) -> None:
        """Start a fresh report when the shadow section (its ``section_key``) has changed;
        ``since``: when the section took effect (``ShadowPlan.since``), else now."""
        if section != self.section:
            self.section = section
            self.since = (since or now_iso()) if section else None
            self.pairs = {}

    def _tallies(self, section: str, primary: str, shadow: str) -> list[PairTally]:
        total = self.cumulative.get((primary, shadow))
        if total is None:
            total = self.cumulative[(primary, shadow)] = PairTally(detail=False)
        if section != self.section:
            return [total]  # sent before the section changed: not part of the new report
        report = self.pairs.get(primary)
        if report is None:
            report = self.pairs[primary] = PairTally()
        return [report, total]

    def count(self, section: str, primary: str, shadow: str, outcome: str) -> None:
        """One mirror's outcome, under the section that sent it."""
        for tally in self._tallies(section, primary, shadow):
            tally.count(outcome)

    def add(
        self,
        section: str,
        primary: str,
        shadow: str,
        comparisons: list[RowComparison],
        request_id: str,
        latency_s: dict[str, float],
    ) -> None:
        """One compared request, under the section that sent it."""
        for tally in self._tallies(section, primary, shadow):
            tally.add(comparisons, request_id, latency_s)

    # --- across workers ---

    def to_json(self) -> dict[str, Any]:
        return {
            "section": self.section,
            "since": self.since,
            "pairs": {primary: tally.to_json() for primary, tally in self.pairs.items()},
        }


def merge_reports(
    section: str, documents: Iterable[Any]
) -> tuple[str | None, dict[str, PairTally]]:
    """(earliest since, summed tallies) over the workers' documents counting ``section``.

    Documents of another section (a worker that has not reloaded yet, or one that died before
    the change) are left out; malformed ones too.
    """
    since: str | None = None
    parts: dict[str, list[PairTally]] = {}
    for document in documents:
        if not isinstance(document, dict) or document.get("section") != section or not section:
            continue
        try:
            pairs = {str(p): PairTally.from_json(t) for p, t in document["pairs"].items()}
        except (ValueError, KeyError, AttributeError):
            continue
        started = document.get("since")
        if isinstance(started, str) and (since is None or started < since):
            since = started
        for primary, tally in pairs.items():
            parts.setdefault(primary, []).append(tally)
    return since, {primary: PairTally.merged(tallies) for primary, tallies in parts.items()}


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")

"""The judge for another controller: the current verdict of a candidate against stable.

Teams whose traffic is shifted by Argo Rollouts or Flagger can ask this judge instead of a
threshold on a query: the same pure judge (rollout/judge.py, its checks) the controller uses,
over the same sources (a scrape of the gateways, or Prometheus), with the same plan's
thresholds (routing.yaml's ``rollout:`` section when it has one, else the defaults).
rollout/analysis_server.py serves it over HTTP; this module knows nothing of HTTP.

The window: both versions' counts since the candidate's window began, which is the first time
it is asked about (or ``begin``: Flagger's pre-rollout hook, or POST /reset). The other
controller moves the weights inside it; the verdict stays valid however often it is asked
(every check is anytime-valid), so Argo's measurement every ``interval`` and Flagger's hook
every iteration cost nothing in significance. One candidate's window is judged with the
whole ``significance``, as one step of the controller's would be with its budget.

What it says (``status``): ``pass`` (every check passed with enough samples), ``fail`` (a
check proved the candidate worse), ``pending`` (too few samples, or not yet provably either):
the engine should wait, neither promote nor roll back. Each check's numbers are in ``checks``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from rollout.counts import Snapshot
from rollout.judge import judge
from rollout.sources.base import Source
from rollout.verdict import Status
from routing_config import LoadedConfig, RolloutSpec, RoutingConfig

__all__ = ["FAIL", "MAX_WINDOWS", "PASS", "PENDING", "Analysis", "UnknownVersion", "status_of"]

PASS, FAIL, PENDING = "pass", "fail", "pending"
# Windows kept at once: a name becomes a window only when routing.yaml names the version (a
# closed set), and this bounds even that.
MAX_WINDOWS = 64


def status_of(status: Status) -> str:
    if status is Status.PASS:
        return PASS
    if status is Status.FAIL:
        return FAIL
    return PENDING  # waiting for samples, inconclusive (never halted: no horizon here)


class UnknownVersion(Exception):
    """A version the gateways do not report: the field and the value, for a 404."""


@dataclass(frozen=True, slots=True)
class Window:
    baseline: Snapshot
    began: float  # wall clock


class Analysis:
    def __init__(
        self,
        source: Source,
        routing: Callable[[], LoadedConfig],
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``routing``: routing.yaml as it is now (read at every question, so an edit of the
        plan's thresholds or a new version counts at once; ConfigError when invalid)."""
        self.source = source
        self.routing = routing
        self.clock = clock
        self._windows: dict[str, Window] = {}
        self._lock = threading.Lock()  # the server answers from several threads

    def begin(self, candidate: str) -> dict[str, Any]:
        """A new window for ``candidate`` from now (SourceError when unreadable)."""
        self._known(self.routing().config, candidate, "candidate")
        now = self.source.read()
        with self._lock:
            self._keep(candidate, Window(now, self.clock()))
        return {"candidate": candidate, "window_began": _iso(self.clock())}

    def verdict(self, candidate: str, stable: str | None = None) -> dict[str, Any]:
        """The verdict now, as JSON (module docstring); SourceError when unreadable."""
        config = self.routing().config
        spec = config.rollout if config.rollout is not None else RolloutSpec(candidate=candidate)
        stable = stable or config.stable
        self._known(config, candidate, "candidate")
        self._known(config, stable, "stable")
        if candidate == stable:
            raise UnknownVersion(f"candidate: {candidate} is stable itself")
        now = self.source.read()
        with self._lock:
            window = self._windows.get(candidate)
            if window is None or now.restarted_since(window.baseline):
                # First asked (or a gateway restarted: its counters went back to 0): the
                # window begins now, counted from these counters on.
                window = self._keep(candidate, Window(now, self.clock()))
        counts = now.minus(window.baseline)
        verdict = judge(counts.of(candidate), counts.of(stable), spec.thresholds, spec.min_requests)
        return {
            "status": status_of(verdict.status),
            "candidate": candidate,
            "stable": stable,
            "window_began": _iso(window.began),
            "window_seconds": round(self.clock() - window.began, 3),
            "min_requests": spec.min_requests,
            **verdict.to_json(),
        }

    def _keep(self, candidate: str, window: Window) -> Window:
        self._windows.pop(candidate, None)
        while len(self._windows) >= MAX_WINDOWS:
            del self._windows[next(iter(self._windows))]  # the oldest begun
        self._windows[candidate] = window
        return window

    @staticmethod
    def _known(config: RoutingConfig, version: str, field: str) -> None:
        if version not in config.versions:
            known = ", ".join(sorted(config.versions))
            raise UnknownVersion(f"{field}: {version!r} is not a version in routing.yaml ({known})")


def _iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="seconds")

"""Counters of several gateway workers summed at scrape, through one snapshot file per worker.

``serve --workers N`` runs N processes on one port, and a scrape reaches whichever of them accepts
the connection. So each worker writes its counter and histogram samples to
``<GATEWAY_METRICS_DIR>/worker-<pid>-<token>.json`` about once a second, and ``/metrics`` reports
the sum over every such file. Nothing of this runs per proxied request: the request path keeps
tallying in memory, and only the writer and the scrape read the tallies.

What a scrape reports is the sum of the files, never a live value: the scraped worker writes its
own file first, then reads all of them. Each file only ever grows (one writer, atomic renames of
monotonic tallies), so a scrape on one worker followed by one on another never goes back, even
though the other workers' files are up to a second old. A worker that dies leaves its last file
behind, and the uvicorn replacement starts a file of its own (the token keeps a reused pid apart),
so the sum never drops. Only what a killed worker counted after its last write is lost.

A file also carries documents that are not Prometheus samples (the shadow report's tallies, for
instance), each under its name, for a reader that knows how to sum them (``read_documents``).
"""

from __future__ import annotations

import json
import logging
import math
import os
import secrets
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from gateway.periodic import every

log = logging.getLogger("gateway")

SNAPSHOT_GLOB = "worker-*.json"
SNAPSHOT_FORMAT = 1
PARTIAL = ".tmp"  # a file being written: SNAPSHOT_GLOB does not match it
WRITE_INTERVAL_S = 1.0

# The samples a family of each type may have; anything else in a file is ignored.
SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
}

# One sample as stored: (sample name, labels, value).
Sample = tuple[str, dict[str, str], float]
# One worker's snapshot: family name -> its samples.
Snapshot = dict[str, list[Sample]]


def remove_snapshots(directory: Path) -> None:
    """Forget an earlier run's workers (their files would add into this run's counters)."""
    for path in [*directory.glob(SNAPSHOT_GLOB), *directory.glob(SNAPSHOT_GLOB + PARTIAL)]:
        path.unlink(missing_ok=True)


def take_snapshot(families: Iterable[Metric]) -> Snapshot:
    return {
        family.name: [(s.name, dict(s.labels), s.value) for s in family.samples]
        for family in families
    }


def encode(snapshot: Snapshot, documents: Mapping[str, Any] | None = None) -> bytes:
    document = {"format": SNAPSHOT_FORMAT, "families": snapshot, "documents": documents or {}}
    return json.dumps(document, separators=(",", ":")).encode()


def decode(data: bytes) -> Snapshot:
    """A snapshot file's content; ValueError for anything not exactly what ``encode`` writes."""
    document = json.loads(data)
    if not isinstance(document, dict) or document.get("format") != SNAPSHOT_FORMAT:
        raise ValueError("not a gateway metrics snapshot")
    families = document.get("families")
    if not isinstance(families, dict):
        raise ValueError("no families")
    snapshot: Snapshot = {}
    for family, samples in families.items():
        if not isinstance(samples, list):
            raise ValueError(f"{family}: samples are not a list")
        snapshot[family] = [_sample(item) for item in samples]
    return snapshot


def _sample(item: Any) -> Sample:
    if not (isinstance(item, list) and len(item) == 3):
        raise ValueError("a sample is not [name, labels, value]")
    name, labels, value = item
    if not isinstance(name, str) or not isinstance(labels, dict):
        raise ValueError("a sample's name or labels are malformed")
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in labels.items()):
        raise ValueError(f"{name}: labels are not strings")
    # bool is an int to Python, NaN and inf parse from JSON: neither is a count.
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name}: value is not a finite number")
    return name, labels, value


def merge(templates: Sequence[Metric], snapshots: Iterable[Snapshot]) -> list[Metric]:
    """The families of ``templates`` (names, types, help), their samples summed over snapshots.

    Summed per sample name and label set, so every histogram bucket, _count and _sum adds up as
    the counters do; a label set any one worker has is kept. ``_created`` is a timestamp, not a
    count: the earliest one is kept. The templates' own samples are not used.
    """
    totals: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]] = {}
    allowed: dict[str, frozenset[str]] = {}
    for template in templates:
        totals[template.name] = {}
        suffixes = SUFFIXES.get(template.type, ())
        allowed[template.name] = frozenset(template.name + suffix for suffix in suffixes)
    for snapshot in snapshots:
        for family, samples in snapshot.items():
            series = totals.get(family)
            if series is None:
                continue
            names = allowed[family]
            for name, labels, value in samples:
                if name not in names:
                    continue
                key = (name, tuple(sorted(labels.items())))
                seen = series.get(key)
                if seen is None:
                    series[key] = value
                elif name.endswith("_created"):
                    series[key] = min(seen, value)
                else:
                    series[key] = seen + value
    merged: list[Metric] = []
    for template in templates:
        summed = Metric(template.name, template.documentation, template.type, template.unit)
        for (name, label_pairs), value in totals[template.name].items():
            summed.add_sample(name, dict(label_pairs), value)
        merged.append(summed)
    return merged


class SharedCounters(Collector):
    """This worker's snapshot file, and the sum over every worker's file at scrape.

    Runs in the worker's event loop thread, the thread that updates the tallies, so a snapshot
    needs no lock; writes are synchronous for the same reason and keep the file's order.
    """

    def __init__(
        self,
        directory: Path,
        collectors: Sequence[Collector],
        documents: Mapping[str, Callable[[], Any]] | None = None,
    ) -> None:
        self.directory = directory
        self.collectors = collectors
        self.documents = dict(documents or {})  # name -> this worker's current document
        directory.mkdir(parents=True, exist_ok=True)
        # pid for whoever looks in the directory; the token because pids get reused.
        self.path = directory / f"worker-{os.getpid()}-{secrets.token_hex(4)}.json"
        self._written: bytes | None = None
        self._write_failing = False
        self._unreadable: set[str] = set()  # files already logged as skipped

    def own(self) -> list[Metric]:
        return [family for collector in self.collectors for family in collector.collect()]

    def write(self, families: Sequence[Metric] | None = None) -> None:
        """Replace this worker's file atomically, unless nothing changed since the last write."""
        documents = {name: make() for name, make in self.documents.items()}
        data = encode(take_snapshot(self.own() if families is None else families), documents)
        if data == self._written:
            return
        partial = self.path.with_name(self.path.name + PARTIAL)
        try:
            partial.write_bytes(data)
            os.replace(partial, self.path)
        except OSError as exc:
            # The file keeps its last good content: scrapes stay monotonic, only less fresh.
            if not self._write_failing:
                log.warning("cannot write metrics snapshot %s: %s", self.path, exc)
            self._write_failing = True
            return
        if self._write_failing:
            log.warning("metrics snapshot %s written again", self.path)
        self._write_failing = False
        self._written = data

    def read_all(self) -> Iterator[Snapshot]:
        """Every worker's last snapshot, dead workers' included; unreadable files skipped."""
        for path in sorted(self.directory.glob(SNAPSHOT_GLOB)):
            try:
                yield decode(path.read_bytes())
            except (OSError, ValueError) as exc:
                if path.name not in self._unreadable:
                    self._unreadable.add(path.name)
                    log.warning("metrics snapshot %s skipped: %s", path, exc)

    def read_documents(self, name: str) -> list[Any]:
        """Every worker's document ``name`` (this worker's written first), for summing."""
        self.write()
        found = []
        for path in sorted(self.directory.glob(SNAPSHOT_GLOB)):
            try:
                document = json.loads(path.read_bytes())
            except (OSError, ValueError):
                continue  # read_all logs unreadable files; a document is only a report
            documents = document.get("documents") if isinstance(document, dict) else None
            if isinstance(documents, dict) and name in documents:
                found.append(documents[name])
        return found

    def collect(self) -> Iterator[Metric]:
        families = self.own()
        self.write(families)  # first, so what this scrape reports is on disk for the next one
        yield from merge(families, self.read_all())

    async def run(self, interval_s: float = WRITE_INTERVAL_S) -> None:
        await every(interval_s, self.write, log, "metrics snapshot failed")

"""Counts as the decision log keeps them: a restarted controller reads its baselines back."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rollout.counts import FIELDS, TUPLES, Snapshot, VersionCounts

__all__ = [
    "snapshot_from_json",
    "snapshot_to_json",
    "version_counts_from_json",
    "version_counts_to_json",
]


def version_counts_to_json(counts: VersionCounts) -> dict[str, object]:
    return {
        name: list(getattr(counts, name)) if name in TUPLES else getattr(counts, name)
        for name in FIELDS
    }


def version_counts_from_json(data: Mapping[str, Any]) -> VersionCounts:
    """From ``version_counts_to_json``'s object as read back from JSON (a number or a list of
    numbers per field); a field an older log did not write is empty."""
    out: dict[str, Any] = {}  # field name -> a float, or a tuple of floats (TUPLES)
    for name in FIELDS:
        if name in data:
            value = data[name]
            out[name] = tuple(float(x) for x in value) if name in TUPLES else float(value)
    return VersionCounts(**out)


def snapshot_to_json(snapshot: Snapshot) -> dict[str, object]:
    if snapshot.instances is None:
        return {
            version: version_counts_to_json(counts)
            for version, counts in sorted(snapshot.versions.items())
        }
    return {
        "instances": {
            instance: {v: version_counts_to_json(c) for v, c in sorted(counts.items())}
            for instance, counts in sorted(snapshot.instances.items())
        }
    }


def snapshot_from_json(data: Mapping[str, Any]) -> Snapshot:
    """From ``snapshot_to_json``'s object as read back from JSON."""
    if "instances" in data:
        instances = data["instances"]
        return Snapshot.of_instances(
            {
                str(i): {str(v): version_counts_from_json(c) for v, c in counts.items()}
                for i, counts in instances.items()
            }
        )
    return Snapshot({v: version_counts_from_json(c) for v, c in data.items()})

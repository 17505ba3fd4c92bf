"""The quality report's input read from a prediction store: the one place ``outcomes.quality``
(pure arithmetic on arrays) meets the store.

For a window [start, end) of prediction times, one query for every labelled prediction made in
it (``PredictionStore.labelled``), then:

- per version, all its labelled predictions with how each was assigned (shadow copies
  included: the report counts them apart and leaves them out of the unpaired comparison);
- the shadow pairs: each labelled shadow prediction joined with the client's answer to the same
  request id and row (the answer that was served, by another version, with the same outcome),
  grouped by (shadow version, served version). A shadow row whose client answer is not
  labelled in the window (outside it, or pruned) has no pair and is left out.

Versions come out stable first, then the candidate, then any other, by name.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np

from outcomes.quality.report import QualityInput, ShadowPairs, VersionRows, assignment_codes
from outcomes.records import SHADOW, Labelled
from outcomes.store.base import PredictionStore

__all__ = ["quality_input", "quality_input_of"]


def quality_input(
    store: PredictionStore,
    *,
    start: float,
    end: float,
    stable: str,
    candidate: str | None,
    window: dict[str, Any] | None = None,
) -> QualityInput:
    """What ``build_report`` needs for predictions made in [start, end) (Unix seconds)."""
    labelled = store.labelled(start=start, end=end)
    return quality_input_of(
        labelled,
        stable=stable,
        candidate=candidate,
        window=window if window is not None else {"start": start, "end": end},
    )


def _order(stable: str, candidate: str | None) -> Any:
    def key(version: str) -> tuple[int, str]:
        return (0 if version == stable else 1 if version == candidate else 2, version)

    return key


def quality_input_of(
    labelled: Labelled,
    *,
    stable: str,
    candidate: str | None,
    window: dict[str, Any] | None = None,
) -> QualityInput:
    """The same from rows already read (columns as ``PredictionStore.labelled`` gives them)."""
    probability = np.asarray(labelled.churn_probability, dtype=np.float64)
    churned = np.asarray(labelled.churned, dtype=np.bool_)
    version = np.asarray(labelled.version, dtype=object)
    codes = assignment_codes(labelled.assignment)
    rows = []
    for name in sorted({str(v) for v in labelled.version}, key=_order(stable, candidate)):
        mine = version == name
        rows.append(VersionRows(name, probability[mine], churned[mine], codes[mine]))

    # Shadow rows by (request id, row), then the served answers to the same requests.
    shadow_at: dict[tuple[str, int], list[int]] = defaultdict(list)
    for i, assignment in enumerate(labelled.assignment):
        if assignment == SHADOW:
            shadow_at[(labelled.request_id[i], labelled.row[i])].append(i)
    groups: dict[tuple[str, str], tuple[list[int], list[int]]] = {}
    if shadow_at:
        for i, assignment in enumerate(labelled.assignment):
            if assignment == SHADOW:
                continue
            found = shadow_at.get((labelled.request_id[i], labelled.row[i]))
            if not found:
                continue
            for j in found:
                if labelled.version[j] == labelled.version[i]:
                    continue  # a version never shadows itself; be safe all the same
                shadow_rows, served_rows = groups.setdefault(
                    (labelled.version[j], labelled.version[i]), ([], [])
                )
                shadow_rows.append(j)
                served_rows.append(i)
    pairs = tuple(
        ShadowPairs(
            shadow_version,
            served_version,
            probability[np.asarray(shadow_rows, dtype=np.intp)],
            probability[np.asarray(served_rows, dtype=np.intp)],
            churned[np.asarray(served_rows, dtype=np.intp)],
        )
        for (shadow_version, served_version), (shadow_rows, served_rows) in sorted(groups.items())
    )
    return QualityInput(
        stable=stable,
        candidate=candidate,
        versions=tuple(rows),
        pairs=pairs,
        window=dict(window or {}),
    )

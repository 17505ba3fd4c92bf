"""The quality report's input read from a prediction store: the one place ``outcomes.quality``
(pure arithmetic on arrays) meets the store.

For a window [start, end) of prediction times, two reads (``PredictionStore.labelled_columns``
and ``shadow_pairs``), both straight into numpy arrays:

- per version, all its labelled predictions with how each was assigned (shadow copies
  included: the report counts them apart and leaves them out of the unpaired comparison);
- the shadow pairs: each labelled shadow prediction joined with the client's answer to the same
  request id and row (the answer that was served, by another version, with the same outcome),
  grouped by (shadow version, served version). A shadow row whose client answer is not
  labelled in the window (outside it, or pruned) has no pair and is left out.

Versions come out stable first, then the candidate, then any other, by name. A million
labelled predictions are read, and reported on, within 2 s (``python -m bench.quality``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from outcomes.quality.report import (
    ASSIGNMENTS,
    QualityInput,
    ShadowPairs,
    VersionRows,
)
from outcomes.records import ASSIGNMENTS as STORED_ASSIGNMENTS
from outcomes.store.base import PredictionStore

__all__ = ["quality_input"]

# The store's assignment indexes as the report's (the same names; never assume the same order).
_REPORT_CODE = np.array([ASSIGNMENTS.index(a) for a in STORED_ASSIGNMENTS], dtype=np.int8)


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
    columns = store.labelled_columns(start=start, end=end)
    codes = _REPORT_CODE[columns.assignment]
    present = np.unique(columns.version)
    rows = []
    for index in sorted(
        present.tolist(), key=lambda i: _order(stable, candidate)(columns.versions[i])
    ):
        mine = columns.version == index
        rows.append(
            VersionRows(
                columns.versions[index],
                columns.churn_probability[mine],
                columns.churned[mine],
                codes[mine],
            )
        )
    pairs = tuple(
        ShadowPairs(
            p.shadow_version,
            p.served_version,
            p.shadow_probability,
            p.served_probability,
            p.churned,
        )
        for p in store.shadow_pairs(start=start, end=end)
    )
    return QualityInput(
        stable=stable,
        candidate=candidate,
        versions=tuple(rows),
        pairs=pairs,
        window=dict(window if window is not None else {"start": start, "end": end}),
    )


def _order(stable: str, candidate: str | None) -> Any:
    def key(version: str) -> tuple[int, str]:
        return (0 if version == stable else 1 if version == candidate else 2, version)

    return key

"""The GET /shadow document (and ``streamflow shadow``'s table) built from summed tallies."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

from gateway.shadow.compare import quantile
from gateway.shadow.tally import FAILURES, LATENCY_BOUNDS, PairTally
from measures.psi import psi, psi_reading
from measures.quantile import histogram_quantile
from vocabulary.buckets import PROBABILITY_BOUNDS
from vocabulary.tiers import RISK_TIERS as TIERS


def build_report(
    shadow: Mapping[str, Any] | None,
    since: str | None,
    pairs: Mapping[str, PairTally],
) -> dict[str, Any]:
    """``shadow`` is the configured shadow section (None when off); ``pairs`` by primary version.

    Active means copies are being made: a section at 0% mirrors nothing (as /routing and
    ``streamflow status`` say), though its last comparison stays readable."""
    version = shadow["version"] if shadow else None
    return {
        "active": shadow is not None and float(shadow.get("percent") or 0) > 0,
        "shadow": dict(shadow) if shadow else None,
        "since": since,
        "pairs": [
            describe_pair(primary, version, tally)
            for primary, tally in sorted(pairs.items())
            if version is not None
        ],
    }


def describe_pair(primary: str, shadow: str, tally: PairTally) -> dict[str, Any]:
    rows = tally.rows
    explained = sum(tally.overlap)
    agreeing = sum(tally.confusion[i][i] for i in range(len(TIERS)))
    sample = sorted(tally.sample)
    value = psi(tally.bins["primary"], tally.bins["shadow"])
    return {
        "primary": primary,
        "shadow": shadow,
        "mirrored": tally.mirrored,
        "compared": tally.outcomes["compared"],
        "dropped": tally.outcomes["dropped"],
        "failed": tally.failed,
        "failed_by_cause": {cause: tally.outcomes[cause] for cause in FAILURES},
        "rows": rows,
        "tier_agreement": {
            "percent": _percent(agreeing, rows),
            "agreeing_rows": agreeing,
            # confusion[client tier][shadow tier]
            "confusion": {
                client: {theirs: tally.confusion[i][j] for j, theirs in enumerate(TIERS)}
                for i, client in enumerate(TIERS)
            },
        },
        "abs_delta": {
            "mean": tally.delta_sum / rows if rows else None,
            "p50": quantile(sample, 0.5),
            "p95": quantile(sample, 0.95),
            "max": tally.delta_max if rows else None,
            # p50/p95 are exact while every row is in the sample, else from a uniform sample.
            "sampled_rows": len(sample),
        },
        "psi": {
            "value": value,
            "reading": psi_reading(value),
            "bounds": list(PROBABILITY_BOUNDS),
            "primary": list(tally.bins["primary"]),
            "shadow": list(tally.bins["shadow"]),
        },
        "top_reason": {
            # Over the rows both sides explained: a side with no reasons (a V2-only server)
            # leaves its rows out rather than counting as disagreeing.
            "explained_rows": explained,
            "same_top_percent": _percent(tally.same_top, explained),
            "mean_overlap": (
                sum(n * count for n, count in enumerate(tally.overlap)) / explained
                if explained
                else None
            ),
            "rows_by_overlap": list(tally.overlap),
        },
        "latency_ms": {
            side: {
                "p50": _ms(bucket_quantile(tally.latency[side], 0.5)),
                "p99": _ms(bucket_quantile(tally.latency[side], 0.99)),
            }
            for side in ("primary", "shadow")
        },
        "largest_disagreements": [d.as_dict() for d in sorted(tally.largest, reverse=True)],
    }


def bucket_quantile(counts: Sequence[int], q: float) -> float | None:
    """A quantile from histogram counts per LATENCY_BOUNDS bucket (the last is +Inf)."""
    return histogram_quantile(q, LATENCY_BOUNDS, list(itertools.accumulate(counts)))


def _percent(part: int, whole: int) -> float | None:
    return 100.0 * part / whole if whole else None


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)

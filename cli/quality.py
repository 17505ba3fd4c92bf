"""``streamflow quality``: model quality on real outcomes, per version, and the candidate
against stable, from a running gateway's GET /quality."""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from cli.base import Commands
from cli.client import fetch_json
from cli.text import table, text

__all__ = ["format_quality", "register"]

# A report over a million labelled predictions takes about a second.
QUALITY_TIMEOUT_S = 30.0


def register(commands: Commands) -> None:
    sub = commands.add(
        "quality",
        run,
        "show model quality on real outcomes, per version",
        "Ask a running gateway (GET /quality) how each version did on the outcomes posted to "
        "it, over a window of prediction times: labelled predictions, churn rate, ROC AUC with "
        "its 95%% interval, Brier score, log loss, calibration error, observed churn per risk "
        "tier, and the candidate against stable (paired on shadow rows, unpaired over the "
        "canary split). Needs the prediction log (README, Outcomes).",
    )
    commands.add_url_option(sub)
    sub.add_argument(
        "--window",
        help="predictions made in this span, ending now: 30m, 24h, 7d (default: the "
        "gateway's GATEWAY_QUALITY_WINDOW_DAYS, 30 days)",
    )
    sub.add_argument("--candidate", help="the version compared with stable")
    sub.add_argument("--json", action="store_true", help="print the report as JSON")


def run(args: argparse.Namespace) -> int:
    query = {k: v for k, v in (("window", args.window), ("candidate", args.candidate)) if v}
    path = "/quality" + (f"?{urlencode(query)}" if query else "")
    report = fetch_json(args.url, path, timeout=QUALITY_TIMEOUT_S)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for line in format_quality(report):
            print(line)
    return 0


def _f(value: Any, digits: int = 4) -> str:
    return f"{value:.{digits}f}" if isinstance(value, int | float) else "-"


def _pct(value: Any) -> str:
    return f"{100 * value:.1f}%" if isinstance(value, int | float) else "-"


def _interval(numbers: Any, key: str = "value") -> str:
    if not isinstance(numbers, Mapping):
        return "-"
    low, high = numbers.get("interval") or (None, None)
    return f"{_f(numbers.get(key))} [{_f(low)}, {_f(high)}]"


def _signed_interval(numbers: Any) -> str:
    if not isinstance(numbers, Mapping):
        return "-"
    low, high = numbers.get("interval") or (None, None)

    def s(v: Any) -> str:
        return f"{v:+.4f}" if isinstance(v, int | float) else "-"

    return f"{s(numbers.get('estimate'))} [{s(low)}, {s(high)}]"


def _days(seconds: Any) -> str:
    if not isinstance(seconds, int | float):
        return "-"
    if seconds >= 86400:
        return f"{seconds / 86400:g} d"
    return f"{seconds / 3600:.3g} h"


def format_quality(report: Mapping[str, Any]) -> list[str]:
    window = report.get("window") or {}
    versions = report.get("versions") or {}
    stable, candidate = report.get("stable"), report.get("candidate")
    lines = [
        f"quality  over predictions of the last {_days(window.get('seconds'))}; stable "
        f"{text(stable)}, candidate {text(candidate, 'none')}"
    ]
    if not versions:
        return [*lines, "", "no labelled predictions yet: post outcomes (README, Outcomes)"]
    tier_names: list[str] = []
    for numbers in versions.values():
        for tier in numbers.get("tiers") or {}:
            if tier not in tier_names:
                tier_names.append(tier)
    rows = [
        [
            "version",
            "labelled",
            "churn",
            "AUC [95%]",
            "Brier",
            "log loss",
            "ECE",
            *(f"{t} churn" for t in tier_names),
        ]
    ]
    for version, v in versions.items():
        calibration = v.get("calibration") or {}
        tiers = v.get("tiers") or {}
        rows.append(
            [
                str(version),
                str(v.get("labelled", 0)),
                _pct(v.get("churn_rate")),
                _interval(v.get("auc")),
                _f(v.get("brier")),
                _f(v.get("log_loss")),
                _f(calibration.get("expected_calibration_error")),
                *(
                    f"{_pct((tiers.get(t) or {}).get('observed_rate'))} "
                    f"of {(tiers.get(t) or {}).get('count', 0)}"
                    for t in tier_names
                ),
            ]
        )
    lines += ["", *table(rows)]
    comparison = report.get("comparison") or {}
    if candidate is None:
        return lines
    lines += ["", f"{candidate} - {stable} (differences with 95% intervals)"]
    for design, said in (
        ("paired", "paired (shadow rows: the same customers scored by both)"),
        ("unpaired", "unpaired (canary split: weighted and sticky answers only)"),
    ):
        c = comparison.get(design)
        if not isinstance(c, Mapping):
            lines.append(f"  {design:<9} no outcomes yet")
            continue
        projected = (c.get("projected") or {}).get("outcomes")
        lines += [
            f"  {said}",
            f"    outcomes   {c.get('candidate_outcomes')} {candidate}, "
            f"{c.get('stable_outcomes')} {stable}",
            f"    AUC        {_signed_interval(c.get('auc_difference'))}",
            f"    Brier      {_signed_interval(c.get('brier_difference'))}",
        ]
        if isinstance(projected, int):
            half = (c.get("projected") or {}).get("interval_half_width")
            lines.append(f"    about {projected} outcomes for an AUC interval of +-{text(half)}")
        excluded = c.get("excluded")
        if isinstance(excluded, Mapping):
            for version, counts in excluded.items():
                left_out = {k: n for k, n in (counts or {}).items() if n}
                said_out = ", ".join(f"{n} {k}" for k, n in left_out.items()) or "none"
                lines.append(f"    excluded   {version}: {said_out}")
    if comparison.get("unmatched_pairs"):
        lines.append(f"  shadow rows of other pairs of versions: {comparison['unmatched_pairs']}")
    return lines

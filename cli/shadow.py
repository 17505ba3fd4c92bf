"""``streamflow shadow``: how the shadow version's answers differ from the clients', as a table."""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping
from typing import Any

from cli.base import Commands
from cli.client import fetch_json
from cli.text import table, text
from vocabulary.tiers import RISK_TIERS as TIERS

__all__ = ["format_shadow", "register"]


def register(commands: Commands) -> None:
    sub = commands.add(
        "shadow",
        run,
        "show the shadow comparison of a running gateway",
        "Ask a running gateway (GET /shadow) how the shadow version's answers differ from what "
        "clients got since the shadow section last changed: tier agreement and confusion "
        "matrix, |dp|, PSI, top reasons, latency and the largest disagreements.",
    )
    commands.add_url_option(sub)
    sub.add_argument("--json", action="store_true", help="print the report as JSON")


def run(args: argparse.Namespace) -> int:
    report = fetch_json(args.url, "/shadow")
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for line in format_shadow(report):
            print(line)
    return 0


def format_shadow(report: Mapping[str, Any]) -> list[str]:
    shadow = report.get("shadow")
    if not isinstance(shadow, Mapping):
        return ["shadow  off: no shadow section in routing.yaml (see README, Shadow traffic)"]
    if not report.get("active"):
        # As `streamflow status` says it: configured, but nothing is mirrored at 0%.
        return [
            f"shadow  {text(shadow.get('version'))} at {text(shadow.get('percent'))}%: "
            "configured, NOT active (raise percent above 0 in routing.yaml to compare)"
        ]
    lines = [
        f"shadow  {text(shadow.get('version'))} at {text(shadow.get('percent'))}% of "
        f"predictions, since {text(report.get('since'), 'no copy yet')}"
    ]
    pairs = report.get("pairs")
    if not isinstance(pairs, list) or not pairs:
        return [*lines, "", "nothing compared yet"]
    for pair in pairs:
        if isinstance(pair, Mapping):
            lines += ["", *_pair(pair)]
    return lines


def _pair(pair: Mapping[str, Any]) -> list[str]:
    agreement = _mapping(pair.get("tier_agreement"))
    delta = _mapping(pair.get("abs_delta"))
    psi = _mapping(pair.get("psi"))
    top = _mapping(pair.get("top_reason"))
    latency = _mapping(pair.get("latency_ms"))
    causes = _mapping(pair.get("failed_by_cause"))
    failed = ", ".join(f"{cause} {n}" for cause, n in causes.items() if n)
    lines = [
        f"client {text(pair.get('primary'))} vs shadow {text(pair.get('shadow'))}",
        f"  mirrored {text(pair.get('mirrored'))}, compared {text(pair.get('compared'))}, "
        f"dropped {text(pair.get('dropped'))}, failed {text(pair.get('failed'))}"
        + (f" ({failed})" if failed else ""),
        f"  tier agreement  {_pct(agreement.get('percent'))} of {text(pair.get('rows'))} rows",
    ]
    confusion = _mapping(agreement.get("confusion"))
    rows = [("", *(f"shadow {t}" for t in TIERS))]
    for tier in TIERS:
        counts = _mapping(confusion.get(tier))
        rows.append((f"client {tier}", *(text(counts.get(t)) for t in TIERS)))
    lines += [f"    {row}" for row in table(rows)]
    lines += [
        "  |dp|            "
        + "  ".join(f"{k} {_num(delta.get(k))}" for k in ("mean", "p50", "p95", "max")),
        f"  PSI             {_num(psi.get('value'))} ({text(psi.get('reading'))})",
        f"  top reason      same first feature {_pct(top.get('same_top_percent'))}, "
        f"top-3 overlap {_num(top.get('mean_overlap'), 2)} of 3 on average",
        "  latency         "
        + ", ".join(
            f"{label} p50 {_num(_mapping(latency.get(side)).get('p50'), 2)} ms "
            f"p99 {_num(_mapping(latency.get(side)).get('p99'), 2)} ms"
            for label, side in (("client", "primary"), ("shadow", "shadow"))
        ),
    ]
    largest = pair.get("largest_disagreements")
    if isinstance(largest, list) and largest:
        lines.append("  largest disagreements (replay them by request id)")
        rows = [("REQUEST ID", "ROW", "CLIENT", "SHADOW", "|dp|")]
        for item in largest:
            if not isinstance(item, Mapping):
                continue
            client, theirs = _mapping(item.get("primary")), _mapping(item.get("shadow"))
            rows.append(
                (
                    text(item.get("request_id")),
                    text(item.get("row")),
                    f"{_num(client.get('probability'))} {text(client.get('tier'))}",
                    f"{_num(theirs.get('probability'))} {text(theirs.get('tier'))}",
                    _num(item.get("abs_delta")),
                )
            )
        lines += [f"    {row}" for row in table(rows)]
    return lines


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _num(value: Any, digits: int = 4) -> str:
    return f"{value:.{digits}f}" if isinstance(value, int | float) else "-"


def _pct(value: Any) -> str:
    return f"{value:.1f}%" if isinstance(value, int | float) else "-"

"""Goodput under overload: the gateway on the real replicas at 1× and 4× their capacity.

Capacity is a concurrency here, because wrk is a closed loop (each connection sends its next
request when the last is answered): 1× is ``SATURATING_CONNECTIONS``, the fewest connections at
which the gateway's goodput on the three replicas reaches its plateau, and 4× is four times as
many connections. A closed loop offers far more than 4× the requests once the gateway sheds,
since a refused client asks again at once instead of waiting its ``Retry-After``: the 4× row is
harsher than four times the rate would be. bench/README.md says why and what was measured.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bench.wrk import WrkResult, combine

if TYPE_CHECKING:
    from bench.cli import Run

SATURATING_CONNECTIONS = 32
FACTORS = (1, 4)
# GATEWAY_MAX_INFLIGHT_PER_REPLICA of this gateway, sized as README.md says (near the
# concurrency at which a replica reaches its throughput, with room for the canary's share):
# 2 replicas of v2.3.1 x 16 hold the 1x load's 90% unshed.
INFLIGHT_CAP = 16
# A client that waits longer counts as a timeout: no accepted request may take this long
# (README.md, Overload and slow clients).
CLIENT_TIMEOUT_S = 2.0


@dataclass
class OverloadRow:
    factor: int
    workers: int
    result: WrkResult  # medians over the rounds
    rounds_goodput: list[float]

    def as_dict(self) -> dict[str, Any]:
        return {
            "factor": self.factor,
            "workers": self.workers,
            **self.result.as_dict(),
            "rounds_goodput": self.rounds_goodput,
        }


def measure_overload(run: Run, resolve: dict[str, str]) -> dict[str, Any]:
    """1× and 4× in interleaved rounds against one gateway on the real replicas."""
    args = run.args
    workers = args.gateway_workers[-1]
    env = {"GATEWAY_MAX_INFLIGHT_PER_REPLICA": str(INFLIGHT_CAP)}
    gateway, port = run.start_gateway("real", workers, resolve, env=env, name="overload")
    url = f"http://127.0.0.1:{port}/predict"
    conns = {factor: SATURATING_CONNECTIONS * factor for factor in FACTORS}
    rounds = args.rounds
    seconds = max(1.0, args.duration / rounds)
    try:
        if args.warmup > 0:
            for factor in FACTORS:
                run.wrk(url, conns[factor], args.warmup, timeout_s=CLIENT_TIMEOUT_S)
        results: dict[int, list[WrkResult]] = {factor: [] for factor in FACTORS}
        for _ in range(rounds):
            for factor in FACTORS:
                result = run.wrk(url, conns[factor], seconds, timeout_s=CLIENT_TIMEOUT_S)
                results[factor].append(result)
    finally:
        run.procs.stop(gateway)
    rows = [
        OverloadRow(
            factor, workers, combine(results[factor]), [r.goodput_rps for r in results[factor]]
        )
        for factor in FACTORS
    ]
    return {
        "saturating_connections": SATURATING_CONNECTIONS,
        "inflight_cap": INFLIGHT_CAP,
        "client_timeout_s": CLIENT_TIMEOUT_S,
        "rows": [row.as_dict() for row in rows],
    }


def goodput_ratio(doc: dict[str, Any]) -> float | None:
    """Goodput at the highest factor over goodput at 1×, medians of the same run."""
    rows = {row["factor"]: row for row in doc["rows"]}
    base, top = rows.get(1), rows.get(max(FACTORS))
    if not base or not top or not base["goodput_rps"]:
        return None
    ratio: float = round(top["goodput_rps"] / base["goodput_rps"], 3)
    return ratio


def render(doc: dict[str, Any]) -> str:
    rows = doc["rows"]
    out = [
        "",
        f"Goodput under overload (real replicas, gateway x{rows[0]['workers']}, in-flight cap "
        f"{doc['inflight_cap']} a replica; 1x = {doc['saturating_connections']} connections, "
        f"closed loop; client timeout {doc['client_timeout_s']:g} s):",
        "  load  conns  goodput/s  answered/s  refused  accepted p99 ms  max ms  timeouts",
    ]
    for row in rows:
        refused_share = row["refused"] / row["requests"] if row["requests"] else 0.0
        out.append(
            f"  {row['factor']}x   {row['connections']:>5}  {row['goodput_rps']:>9,.0f}  "
            f"{row['rps']:>10,.0f}  {refused_share:>7.0%}  {row['accepted_p99_ms']:>15.1f}  "
            f"{row['max_ms']:>6.0f}  {row['timeouts']:>8}"
        )
    ratio = goodput_ratio(doc)
    if ratio is not None:
        out.append(f"  goodput at {max(FACTORS)}x / 1x: {ratio:.2f}")
    return "\n".join(out)

"""The machine, the bars, the table: everything printed and written after a run."""

from __future__ import annotations

import argparse
import os
import platform
import re
import subprocess
from dataclasses import dataclass
from typing import Any

from bench.tools import Tools

# (name, what is compared, threshold, aim): see bench/README.md.
TRIVIAL_RATIO_BAR = 0.5
TRIVIAL_RATIO_AIM = 0.8
LATENCY_BAR_MS = 0.5
REAL_RATIO_BAR = 0.8
# The real-replica gateway again with 10% of predictions copied to the shadow version.
SHADOW_TARGET = "gateway+shadow10"
SHADOW_RATIO_BAR = 0.9
# The real-replica gateway again with the prediction log on (SQLite, the default store): at
# most 5% fewer req/s at 64 connections, at most 0.05 ms more p50 at 1 (issue: outcomes).
LOG_TARGET = "gateway+log"
LOG_RATIO_BAR = 0.95
LOG_P50_BAR_MS = 0.05
BATCH_SPEEDUP_BAR = 5.0
# The real-replica gateway again, the same customer on the Open Inference Protocol (V2 JSON, all
# three outputs): at least 0.9x /predict's req/s at 64 connections, at most 0.05 ms more p50 at
# 1; and a 1,000-row V2 request in binary at least as fast end to end as /predict/batch of the
# same rows (bench/v2.py).
V2_TARGET = "gateway V2 JSON"
V2_RATIO_BAR = 0.9
V2_P50_BAR_MS = 0.05
V2_BATCH_BAR = 1.0
# Goodput (answers below 400 a second) at 4x the replicas' capacity over goodput at 1x.
OVERLOAD_GOODPUT_BAR = 0.9
# The servers' own cost, read as CPU per request from /proc (bench/cpu.py): a replica's per
# /predict, prediction and top-3 SHAP included; a gateway's per proxied request against nginx's
# doing the same job on the same backends.
REPLICA_CPU_BAR_US = 80.0
GATEWAY_CPU_RATIO_BAR = 1.5


def describe_machine(tools: Tools) -> dict[str, Any]:
    cpu = "unknown CPU"
    try:
        for line in open("/proc/cpuinfo"):  # noqa: SIM115 - read once
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gb = None
    try:
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        mem_gb = round(pages / 2**30, 1)
    except (ValueError, OSError):
        pass
    cores = len(os.sched_getaffinity(0))
    load = os.getloadavg()[0]
    info = {
        "cpu": cpu,
        "cores": cores,
        "memory_gb": mem_gb,
        "os": _os_name(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "nginx": _version([tools.nginx, "-v"], r"nginx/(\S+)"),
        "wrk": _version([tools.wrk, "-v"], r"wrk (\S+)"),
        "loadavg_1m": round(load, 2),
    }
    info["summary"] = (
        f"{cores} cores of {cpu}, {mem_gb} GB, {info['os']}, Python {info['python']}, "
        f"nginx {info['nginx']}, wrk {info['wrk']}"
    )
    return info


def _os_name() -> str:
    try:
        for line in open("/etc/os-release"):  # noqa: SIM115
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return platform.system()


def _version(argv: list[str], pattern: str) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except OSError:
        return "?"
    match = re.search(pattern, out.stdout + out.stderr)
    return match.group(1) if match else "?"


@dataclass(frozen=True)
class Bar:
    name: str
    measured: float | None
    threshold: float
    higher_is_better: bool
    detail: str
    unit: str | None = None  # None: "x" for a ratio, " ms" for a latency

    @property
    def passed(self) -> bool | None:
        if self.measured is None:
            return None
        if self.higher_is_better:
            return self.measured >= self.threshold
        return self.measured <= self.threshold

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "measured": self.measured,
            "threshold": self.threshold,
            "higher_is_better": self.higher_is_better,
            "passed": self.passed,
            "detail": self.detail,
            "unit": self.unit,
        }


def _find(
    rows: list[dict[str, Any]], backend: str, target: str, conns: int, workers: int | None = None
) -> dict[str, Any] | None:
    for row in rows:
        if (
            row["backend"] == backend
            and row["target"] == target
            and row["connections"] == conns
            and (workers is None or row["workers"] == workers)
        ):
            return row
    return None


def _ratios(rows: list[dict[str, Any]]) -> None:
    """Add gateway/nginx and gateway/direct throughput ratios and p50 over direct, in place."""
    for row in rows:
        direct = _find(rows, row["backend"], "direct", row["connections"])
        nginx = _find(rows, row["backend"], "nginx", row["connections"])
        row["x_nginx"] = round(row["rps"] / nginx["rps"], 3) if nginx and nginx["rps"] else None
        row["x_direct"] = round(row["rps"] / direct["rps"], 3) if direct and direct["rps"] else None
        row["p50_over_direct_ms"] = round(row["p50_ms"] - direct["p50_ms"], 3) if direct else None
        cpu, nginx_cpu = row.get("cpu_us_per_request"), nginx and nginx.get("cpu_us_per_request")
        row["cpu_x_nginx"] = round(cpu / nginx_cpu, 3) if cpu and nginx_cpu else None


def evaluate(doc: dict[str, Any]) -> list[Bar]:
    rows = doc["measurements"]
    workers = doc["config"]["gateway_workers_held_to_bars"]
    conns = doc["config"]["connections"]
    low, high = min(conns), max(conns)
    bars: list[Bar] = []

    def gateway(backend: str, c: int) -> dict[str, Any] | None:
        return _find(rows, backend, "gateway", c, workers)

    row = gateway("trivial", high)
    bars.append(
        Bar(
            f"trivial backend, {high} conns: gateway >= {TRIVIAL_RATIO_BAR}x nginx req/s",
            row["x_nginx"] if row else None,
            TRIVIAL_RATIO_BAR,
            True,
            f"aim {TRIVIAL_RATIO_AIM}x",
        )
    )
    for backend in ("trivial", "real"):
        row = gateway(backend, low)
        if backend == "real" and row is None:
            continue
        bars.append(
            Bar(
                f"{backend} backend, {low} conn: gateway p50 <= direct + {LATENCY_BAR_MS} ms",
                row["p50_over_direct_ms"] if row else None,
                LATENCY_BAR_MS,
                False,
                "ms over direct",
            )
        )
    row = gateway("real", high)
    if row is not None:
        bars.append(
            Bar(
                f"real replicas, {high} conns: gateway >= {REAL_RATIO_BAR}x nginx req/s",
                row["x_nginx"],
                REAL_RATIO_BAR,
                True,
                "",
            )
        )
        shadow = _find(rows, "real", SHADOW_TARGET, high, workers)
        if shadow is not None:
            bars.append(
                Bar(
                    f"real replicas, {high} conns: {SHADOW_TARGET} >= {SHADOW_RATIO_BAR}x "
                    "gateway req/s",
                    round(shadow["rps"] / row["rps"], 3) if row["rps"] else None,
                    SHADOW_RATIO_BAR,
                    True,
                    "shadow on vs off, same run",
                )
            )
        logged = _find(rows, "real", LOG_TARGET, high, workers)
        if logged is not None:
            bars.append(
                Bar(
                    f"real replicas, {high} conns: {LOG_TARGET} >= {LOG_RATIO_BAR}x gateway req/s",
                    round(logged["rps"] / row["rps"], 3) if row["rps"] else None,
                    LOG_RATIO_BAR,
                    True,
                    "prediction log on vs off, same run",
                )
            )
    for c in sorted(set(conns)):
        direct = _find(rows, "real", "direct", c)
        if direct is not None:
            bars.append(
                Bar(
                    f"real replica, {c} conn{'s' if c > 1 else ''}: CPU per /predict <= "
                    f"{REPLICA_CPU_BAR_US:g} µs",
                    direct.get("cpu_us_per_request"),
                    REPLICA_CPU_BAR_US,
                    False,
                    "user + system time of the replica over the requests answered",
                    unit=" µs",
                )
            )
    for backend in ("trivial", "real"):
        row = gateway(backend, high)
        if row is not None:
            bars.append(
                Bar(
                    f"{backend} backend, {high} conns: gateway CPU per request <= "
                    f"{GATEWAY_CPU_RATIO_BAR:g}x nginx's",
                    row.get("cpu_x_nginx"),
                    GATEWAY_CPU_RATIO_BAR,
                    False,
                    "each one's processes, user + system time per request",
                    unit="x",
                )
            )
    plain_low = gateway("real", low)
    logged_low = _find(rows, "real", LOG_TARGET, low, workers)
    if plain_low is not None and logged_low is not None:
        bars.append(
            Bar(
                f"real replicas, {low} conn: {LOG_TARGET} p50 <= gateway + {LOG_P50_BAR_MS} ms",
                round(logged_low["p50_ms"] - plain_low["p50_ms"], 3),
                LOG_P50_BAR_MS,
                False,
                "ms over the log off, same run",
            )
        )
    bars += _v2_bars(doc, rows, low, high, workers)
    overload = doc.get("overload")
    if overload:
        from bench.overload import goodput_ratio

        bars.append(
            Bar(
                f"real replicas, 4x capacity: goodput >= {OVERLOAD_GOODPUT_BAR}x goodput at 1x",
                goodput_ratio(overload),
                OVERLOAD_GOODPUT_BAR,
                True,
                "same run",
            )
        )
        timeouts = sum(row["timeouts"] for row in overload["rows"])
        limit = overload["client_timeout_s"]
        bars.append(
            Bar(
                f"real replicas, 1x and 4x: no client waits over {limit:g} s",
                timeouts,
                0,
                False,
                "",
                unit=" requests timed out",
            )
        )
    batch = doc.get("batch")
    if batch:
        http = batch["speedup_http"]
        bars.append(
            Bar(
                f"batch of {batch['rows']} with SHAP: >= {BATCH_SPEEDUP_BAR:g}x the chapter's code",
                http if http is not None else batch["speedup_in_process"],
                BATCH_SPEEDUP_BAR,
                True,
                "endpoint vs endpoint, over HTTP" if http is not None else "in process",
            )
        )
    return bars


def _v2_bars(
    doc: dict[str, Any], rows: list[dict[str, Any]], low: int, high: int, workers: int
) -> list[Bar]:
    bars: list[Bar] = []
    plain, v2 = _find(rows, "real", "gateway", high, workers), _find(rows, "real", V2_TARGET, high)
    if plain is not None and v2 is not None:
        bars.append(
            Bar(
                f"real replicas, {high} conns: {V2_TARGET} >= {V2_RATIO_BAR}x gateway /predict "
                "req/s",
                round(v2["rps"] / plain["rps"], 3) if plain["rps"] else None,
                V2_RATIO_BAR,
                True,
                "the same customer, same run",
            )
        )
    plain, v2 = _find(rows, "real", "gateway", low, workers), _find(rows, "real", V2_TARGET, low)
    if plain is not None and v2 is not None:
        bars.append(
            Bar(
                f"real replicas, {low} conn: {V2_TARGET} p50 <= gateway /predict + "
                f"{V2_P50_BAR_MS} ms",
                round(v2["p50_ms"] - plain["p50_ms"], 3),
                V2_P50_BAR_MS,
                False,
                "ms over /predict, same run",
            )
        )
    v2_batch = doc.get("v2_batch")
    if v2_batch:
        bars.append(
            Bar(
                f"{v2_batch['rows']:,} rows: V2 binary >= {V2_BATCH_BAR:g}x /predict/batch, "
                "end to end",
                v2_batch["binary_speedup"],
                V2_BATCH_BAR,
                True,
                "through the gateway, same run",
            )
        )
    return bars


def build(
    args: argparse.Namespace,
    machine: dict[str, Any],
    measurements: list[Any],
    checks: list[dict[str, Any]],
    batch: Any,
    elapsed_s: float,
    overload: dict[str, Any] | None = None,
    v2_batch: dict[str, Any] | None = None,
) -> dict[str, Any]:
    order = {
        "trivial": 0,
        "real": 1,
        "direct": 0,
        "nginx": 1,
        "gateway": 2,
        SHADOW_TARGET: 3,
        LOG_TARGET: 4,
        V2_TARGET: 5,
    }
    rows = sorted(
        (m.as_dict() for m in measurements),
        key=lambda r: (
            order[r["backend"]],
            order[r["target"]],
            r["workers"] or 0,
            r["connections"],
        ),
    )
    _ratios(rows)
    doc: dict[str, Any] = {
        "machine": machine,
        "config": {
            "smoke": args.smoke,
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "connections": args.connections,
            "gateway_workers": args.gateway_workers,
            "gateway_workers_held_to_bars": args.gateway_workers[-1],
            "wrk_threads": args.wrk_threads,
            "gateway_env": args.gateway_env,
            "routing": "canary v2.3.1 90 / v2.4.0 10, sticky X-Customer-Id (new key each "
            "request), pinning allowed, health checks every 1 s",
        },
        "measurements": rows,
        "checks": checks,
        "batch": batch.as_dict() if batch is not None else None,
        "overload": overload,
        "v2_batch": v2_batch,
        "elapsed_s": round(elapsed_s, 1),
    }
    real_direct = _find(rows, "real", "direct", 1)
    doc["model_server_predict_p50_ms_1conn"] = real_direct["p50_ms"] if real_direct else None
    doc["bars"] = [bar.as_dict() for bar in evaluate(doc)]
    doc["all_bars_met"] = all(bar["passed"] for bar in doc["bars"])
    return doc


def _fmt(value: Any, spec: str, none: str = "-") -> str:
    return none if value is None else format(value, spec)


def render(doc: dict[str, Any]) -> str:
    machine = doc["machine"]
    config = doc["config"]
    out = [
        "",
        f"Machine: {machine['summary']}; load {machine['loadavg_1m']} before the run",
        f"Runs: {config['duration_s']:g} s each after {config['warmup_s']:g} s warm-up; "
        f"wrk, nginx, backends and gateway share the machine; {config['routing']}",
        "direct = one replica (v2.3.1-a); nginx and the gateway spread over all three replicas"
        + (f"; gateway settings {config['gateway_env']}" if config["gateway_env"] else ""),
        "",
    ]
    header = (
        "backend", "target", "conns", "req/s", "p50 ms", "p99 ms", "errors",
        "/nginx", "/direct", "p50 +direct", "cpu µs/req", "cpu /nginx",
    )  # fmt: skip
    table = [header]
    for row in doc["measurements"]:
        target = row["target"]
        if row["workers"] is not None:
            target += f" ({row['workers']}w)"
        table.append(
            (
                row["backend"],
                target,
                str(row["connections"]),
                f"{row['rps']:,.0f}",
                f"{row['p50_ms']:.3f}",
                f"{row['p99_ms']:.3f}",
                str(row["errors"]),
                _fmt(row["x_nginx"], ".2f") if row["target"] != "nginx" else "",
                _fmt(row["x_direct"], ".2f") if row["target"] != "direct" else "",
                _fmt(row["p50_over_direct_ms"], "+.3f") if row["target"] != "direct" else "",
                _fmt(row.get("cpu_us_per_request"), ".0f"),
                _fmt(row.get("cpu_x_nginx"), ".2f") if row["target"] != "nginx" else "",
            )
        )
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    for i, cells in enumerate(table):
        line = "  ".join(
            cell.ljust(width) if j < 2 else cell.rjust(width)
            for j, (cell, width) in enumerate(zip(cells, widths, strict=True))
        )
        out.append(line)
        if i == 0:
            out.append("-" * len(line))
    if doc.get("model_server_predict_p50_ms_1conn") is not None:
        out += ["", f"Model server /predict p50 at 1 connection: "
                f"{doc['model_server_predict_p50_ms_1conn']:.3f} ms"]  # fmt: skip
    batch = doc.get("batch")
    if batch:
        out += [
            "",
            f"Batch of {batch['rows']} rows with SHAP (v2.3.1):",
            f"  chapter's code (DataFrame per row, SHAP row by row)  "
            f"{batch['chapter_ms']:>8.1f} ms",
            f"  ours, in process (one predict, one SHAP call)        "
            f"{batch['ours_in_process_ms']:>8.1f} ms  {batch['speedup_in_process']:.1f}x faster",
        ]
        if batch["chapter_http_ms"] is not None:
            out.append(
                f"  chapter's endpoint, POST /predict/batch end to end   "
                f"{batch['chapter_http_ms']:>8.1f} ms"
            )
        if batch["ours_http_ms"] is not None:
            speedup = batch["speedup_http"]
            out.append(
                f"  our endpoint, POST /predict/batch end to end         "
                f"{batch['ours_http_ms']:>8.1f} ms"
                + (f"  {speedup:.1f}x faster" if speedup is not None else "")
            )
        agree = "equal" if batch["probabilities_equal"] else "DIFFERENT"
        out.append(
            f"  probabilities {agree}; same top-3 reasons on "
            f"{batch['top_reason_agreement']:.1%} of rows (the rest are exact ties in order)"
        )
    if doc.get("v2_batch"):
        from bench.v2 import render as render_v2

        out.append(render_v2(doc["v2_batch"]))
    if doc.get("overload"):
        from bench.overload import render as render_overload

        out.append(render_overload(doc["overload"]))
    out += ["", "Bars:"]
    for bar in doc["bars"]:
        verdict = {True: "PASS", False: "FAIL", None: "n/a "}[bar["passed"]]
        unit = bar.get("unit")
        if unit is None:
            unit = " ms" if not bar["higher_is_better"] else "x"
            measured = _fmt(bar["measured"], ".3f" if not bar["higher_is_better"] else ".2f")
        else:
            measured = _fmt(bar["measured"], "g")
        extra = f" ({bar['detail']})" if bar["detail"] else ""
        out.append(f"  {verdict}  {bar['name']}: {measured}{unit}{extra}")
    out.append(f"\nAll bars met: {'yes' if doc['all_bars_met'] else 'NO'}")
    return "\n".join(out)

"""Traffic for deploy/e2e-containers.sh: predictions through the gateway, counted by version.

    python deploy/e2e_traffic.py wait    --url URL [--timeout S]
    python deploy/e2e_traffic.py split   --url URL --requests N [--expect V=SHARE ...] [--sigmas K]
    python deploy/e2e_traffic.py revision --url URL [--changed-from REV] [--timeout S]
    python deploy/e2e_traffic.py load    --url URL --seconds S --concurrency C --out FILE [--varied]
    python deploy/e2e_traffic.py check-load FILE [--min-requests N] [--only V]
    python deploy/e2e_traffic.py pin     --url URL --version V
    python deploy/e2e_traffic.py prometheus --url PROMETHEUS --gateway URL [--timeout S]

Every loop is bounded by a count and a time limit; only the given URLs (127.0.0.1 addresses) are
ever contacted. Each subcommand prints one summary line and exits non-zero when its check fails.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any, TypedDict

import httpx

from vocabulary import headers
from vocabulary.metric_names import GATEWAY_REQUESTS, MODEL_CHURN_PROBABILITY

# The chapter's full payload, as shipped for curl users.
ROOT = Path(__file__).resolve().parents[1]
CUSTOMER = json.loads((ROOT / "examples" / "customer.json").read_text())
MAX_REQUESTS = 50_000
SCRAPE_CONFIG = ROOT / "deploy" / "prometheus" / "prometheus.yml"


class CheckFailed(Exception):
    pass


def served_version(resp: httpx.Response) -> str:
    """The version in X-Model-Version, after checking the body agrees with it."""
    if resp.status_code != 200:
        raise CheckFailed(f"HTTP {resp.status_code}: {resp.text[:200]}")
    header: str | None = resp.headers.get(headers.MODEL_VERSION)
    body: object = resp.json().get("model_version")
    if header is None or header != body:
        raise CheckFailed(f"X-Model-Version {header!r} but the body says {body!r}")
    return header


def cmd_wait(args: argparse.Namespace) -> None:
    deadline = time.monotonic() + args.timeout
    last = "no answer"
    with httpx.Client(base_url=args.url, timeout=2.0) as client:
        while time.monotonic() < deadline:
            try:
                resp = client.get("/ready")
                if resp.status_code == 200:
                    print(f"gateway ready: {resp.json()}")
                    return
                last = f"/ready {resp.status_code}: {resp.text[:200]}"
            except httpx.HTTPError as exc:
                last = repr(exc)
            time.sleep(0.5)
    raise CheckFailed(f"gateway not ready after {args.timeout} s ({last})")


def cmd_split(args: argparse.Namespace) -> None:
    n = min(args.requests, MAX_REQUESTS)
    counts: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    revisions: set[str] = set()
    with httpx.Client(base_url=args.url, timeout=10.0) as client:
        for _ in range(n):
            resp = client.post("/predict", json=CUSTOMER)
            counts[served_version(resp)] += 1
            reasons[resp.headers.get("x-route-reason", "?")] += 1
            revisions.add(resp.headers.get("x-routing-revision", "?"))
    print(
        f"split of {n}: {dict(sorted(counts.items()))} reasons {dict(reasons)} "
        f"revisions {sorted(revisions)}"
    )
    for item in args.expect:
        version, share = item.split("=", 1)
        p = float(share)
        got = counts.get(version, 0)
        if p in (0.0, 1.0):
            # Weight 0 means none and 100 means all: no statistical slack.
            ok = got == round(p * n)
            band = f"exactly {round(p * n)}"
        else:
            slack = args.sigmas * math.sqrt(n * p * (1 - p))
            ok = abs(got - p * n) <= slack
            band = f"{p * n:.0f} +- {slack:.0f}"
        print(f"  {version}: {got} of {n}, expected {band}: {'ok' if ok else 'FAIL'}")
        if not ok:
            raise CheckFailed(f"{version} served {got} of {n}, expected {band}")


def cmd_revision(args: argparse.Namespace) -> None:
    """Print the live routing revision, or wait until it differs from ``--changed-from``."""
    start = time.monotonic()
    with httpx.Client(base_url=args.url, timeout=2.0) as client:
        while time.monotonic() - start < args.timeout:
            routing = client.get("/routing").json()
            if routing.get("last_reload_error"):
                raise CheckFailed(f"reload rejected: {routing['last_reload_error']}")
            if args.changed_from is None:
                print(routing["revision"])
                return
            if routing["revision"] != args.changed_from:
                elapsed = time.monotonic() - start
                print(
                    f"revision {routing['revision']} live {elapsed:.2f} s after the edit, "
                    f"weights {json.dumps(routing['weights'])}"
                )
                return
            time.sleep(0.1)
    raise CheckFailed(f"still revision {args.changed_from} after {args.timeout} s")


def varied_customers() -> list[dict[str, Any]]:
    """The benchmark's seeded, varied customers: a judge of prediction drift (PSI) needs a spread
    of probabilities, which one repeated payload does not give."""
    sys.path.insert(0, str(ROOT))  # bench/ is a directory of the checkout, not an installed package
    from bench.batch import make_customers

    return make_customers(500)


class LoadReport(TypedDict):
    """What `load` writes to --out and `check-load` reads."""

    requests: int
    ok: int
    failed: int
    failures: list[str]  # the first 20
    by_version: dict[str, int]
    by_reason: dict[str, int]  # X-Route-Reason
    seconds: float
    rps: float
    p50_ms: float | None
    p99_ms: float | None


async def run_load(url: str, seconds: float, concurrency: int, varied: bool = False) -> LoadReport:
    stop_at = time.monotonic() + seconds
    customers = varied_customers() if varied else [CUSTOMER]
    counts: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    failures: list[str] = []
    latencies: list[float] = []
    sent = 0

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal sent
        while time.monotonic() < stop_at and sent < MAX_REQUESTS:
            sent += 1
            t0 = time.perf_counter()
            try:
                resp = await client.post("/predict", json=customers[sent % len(customers)])
                counts[served_version(resp)] += 1
                reasons[resp.headers.get("x-route-reason", "?")] += 1
            except (httpx.HTTPError, CheckFailed, ValueError) as exc:
                failures.append(f"{time.strftime('%H:%M:%S')} {exc!r}"[:300])
            latencies.append(time.perf_counter() - t0)

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=15.0, limits=limits) as client:
        t0 = time.monotonic()
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        wall = time.monotonic() - t0
    latencies.sort()

    def pct(q: float) -> float:
        return round(latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000, 1)

    return {
        "requests": sent,
        "ok": sum(counts.values()),
        "failed": len(failures),
        "failures": failures[:20],
        "by_version": dict(counts),
        "by_reason": dict(reasons),
        "seconds": round(wall, 2),
        "rps": round(sent / wall, 1) if wall else 0.0,
        "p50_ms": pct(0.50) if latencies else None,
        "p99_ms": pct(0.99) if latencies else None,
    }


def cmd_load(args: argparse.Namespace) -> None:
    result = asyncio.run(
        run_load(args.url, min(args.seconds, 300.0), args.concurrency, args.varied)
    )
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"load: {json.dumps({k: v for k, v in result.items() if k != 'failures'})}")


def cmd_check_load(args: argparse.Namespace) -> None:
    result = json.loads(Path(args.file).read_text())
    if result["failed"]:
        raise CheckFailed(
            f"{result['failed']} of {result['requests']} requests failed: {result['failures']}"
        )
    if result["requests"] < args.min_requests:
        raise CheckFailed(f"only {result['requests']} requests sent, wanted {args.min_requests}")
    if args.only and set(result["by_version"]) != {args.only}:
        raise CheckFailed(f"expected only {args.only}, got {result['by_version']}")
    print(f"no failed request among {result['requests']} ({result['by_version']})")


def cmd_pin(args: argparse.Namespace) -> None:
    with httpx.Client(base_url=args.url, timeout=10.0) as client:
        resp = client.post("/predict", json=CUSTOMER, headers={headers.MODEL_VERSION: args.version})
    version = served_version(resp)
    reason = resp.headers.get("x-route-reason")
    if version != args.version or reason != "pinned":
        raise CheckFailed(f"pinned {args.version}, served {version} ({reason})")
    print(f"pinned {args.version}: served {version}, X-Route-Reason {reason}")


def gateway_requests_total(client: httpx.Client, url: str) -> float:
    """The gateway's own count of client requests, from its /metrics."""
    from prometheus_client.parser import text_string_to_metric_families

    text = client.get(f"{url}/metrics").raise_for_status().text
    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == GATEWAY_REQUESTS.total
    )


def cmd_prometheus(args: argparse.Namespace) -> None:
    """Every target of the scrape config up, and PromQL's sums of the gateway's requests and of the
    replicas' predictions equal to what the gateway itself counts (the traffic has stopped, so
    the next scrapes must agree)."""
    import yaml

    config = yaml.safe_load(SCRAPE_CONFIG.read_text())
    expected = {
        (job["job_name"], target)
        for job in config["scrape_configs"]
        for static in job["static_configs"]
        for target in static["targets"]
    }
    deadline = time.monotonic() + args.timeout
    with httpx.Client(timeout=5.0) as client:

        def query(promql: str) -> list[dict[str, Any]]:
            body = client.get(f"{args.url}/api/v1/query", params={"query": promql}).json()
            if body.get("status") != "success":
                raise CheckFailed(f"{promql}: {body}")
            result: list[dict[str, Any]] = body["data"]["result"]  # Prometheus's JSON
            return result

        up: dict[tuple[str, str], str] = {}
        while time.monotonic() < deadline:
            targets = client.get(f"{args.url}/api/v1/targets").json()["data"]["activeTargets"]
            up = {
                (t["labels"]["job"], t["labels"]["instance"]): t["health"]
                + (f" ({t['lastError']})" if t.get("lastError") else "")
                for t in targets
            }
            if set(up) == expected and set(up.values()) == {"up"}:
                break
            time.sleep(1)
        else:
            raise CheckFailed(f"targets after {args.timeout} s: {up}, expected {sorted(expected)}")
        print(f"all {len(up)} targets up: {', '.join(f'{j}/{i}' for j, i in sorted(up))}")

        # The replicas are scraped at other moments than the gateway: wait for both, so that
        # whatever reads Prometheus next (the rollout controller's baseline) sees all of it.
        want = gateway_requests_total(client, args.gateway)
        sums: dict[str, float | None] = {
            GATEWAY_REQUESTS.total: None,
            MODEL_CHURN_PROBABILITY.count: None,
        }
        while time.monotonic() < deadline:
            for name in sums:
                result = query(f"sum({name})")
                sums[name] = float(result[0]["value"][1]) if result else None
            if set(sums.values()) == {want}:
                break
            time.sleep(1)
        else:
            raise CheckFailed(f"Prometheus sums {sums}; the gateway counts {want} requests")

        def by_version(name: str) -> dict[str, float]:
            result = query(f"sum by (version) ({name})")
            return {r["metric"].get("version", "?"): float(r["value"][1]) for r in result}

        print(
            f"sum({GATEWAY_REQUESTS.total}) = {want:.0f}, as the gateway counts, by version "
            f"{by_version(GATEWAY_REQUESTS.total)}; the replicas' predictions the same: "
            f"{by_version(MODEL_CHURN_PROBABILITY.count)}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("wait")
    p.add_argument("--url", required=True)
    p.add_argument("--timeout", type=float, default=120.0)
    p.set_defaults(run=cmd_wait)

    p = sub.add_parser("split")
    p.add_argument("--url", required=True)
    p.add_argument("--requests", type=int, default=400)
    p.add_argument("--expect", action="append", default=[], metavar="VERSION=SHARE")
    p.add_argument("--sigmas", type=float, default=4.0)
    p.set_defaults(run=cmd_split)

    p = sub.add_parser("revision")
    p.add_argument("--url", required=True)
    p.add_argument("--changed-from", metavar="REVISION")
    p.add_argument("--timeout", type=float, default=10.0)
    p.set_defaults(run=cmd_revision)

    p = sub.add_parser("load")
    p.add_argument("--url", required=True)
    p.add_argument("--seconds", type=float, default=15.0)
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--out", required=True)
    p.add_argument("--varied", action="store_true", help="varied customers, not one payload")
    p.set_defaults(run=cmd_load)

    p = sub.add_parser("check-load")
    p.add_argument("file")
    p.add_argument("--min-requests", type=int, default=100)
    p.add_argument("--only")
    p.set_defaults(run=cmd_check_load)

    p = sub.add_parser("pin")
    p.add_argument("--url", required=True)
    p.add_argument("--version", required=True)
    p.set_defaults(run=cmd_pin)

    p = sub.add_parser("prometheus")
    p.add_argument("--url", required=True, help="the Prometheus server")
    p.add_argument("--gateway", required=True, help="the gateway it scrapes")
    p.add_argument("--timeout", type=float, default=60.0)
    p.set_defaults(run=cmd_prometheus)

    args = parser.parse_args(argv)
    try:
        args.run(args)
    except (CheckFailed, httpx.HTTPError) as exc:
        print(f"FAIL: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Replica start-up time: process start until ``GET /ready`` answers 200, cold and warm.

    python -m bench.startup [--version v2.3.1] [--runs 3] [--source DIR] [--seed]

*cold*: every start gets an empty numba cache directory, so the TreeSHAP kernels compile (a
replica's first start on a machine, or on a new CPU). *warm*: one start fills a cache directory,
then each measured start reuses it (every later start on that machine). ``--seed`` adds *seeded*:
each start gets an empty cache directory plus a ready one as ``MODEL_NUMBA_CACHE_SEED``, as a
container of the model image starts. ``--source`` runs the model server of another checkout (for
example an export of an earlier commit) with this interpreter, to compare before and after.
Starts run one at a time; the table gives every run and the median, in wall-clock seconds and
in CPU seconds of the replica process (user + system, to its exit right after /ready). On a busy
machine the wall clock stretches with the load; the CPU time much less.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import httpx

from bench.procs import REPO_ROOT, free_port


def time_to_ready(
    source: Path, version: str, env: dict[str, str], timeout_s: float
) -> tuple[float, float]:
    """Seconds from spawning one replica until its /ready answers 200, and the CPU seconds it
    used; the replica is stopped."""
    port = free_port()
    argv = [
        sys.executable, "-m", "uvicorn", "--factory", "model_server.app:create_app",
        "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
    ]  # fmt: skip
    model = source / "artifacts" / version / "model.joblib"
    if not model.exists():
        model = REPO_ROOT / "artifacts" / version / "model.joblib"
    child_env = {**os.environ, "MODEL_VERSION": version, "MODEL_PATH": str(model), **env}
    url = f"http://127.0.0.1:{port}/ready"
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    ready_after: float | None = None
    proc = subprocess.Popen(
        argv, env=child_env, cwd=source, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        with httpx.Client(timeout=1.0) as client:
            while time.monotonic() - started < timeout_s:
                if proc.poll() is not None:
                    error = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
                    raise RuntimeError(f"replica exited with {proc.returncode}:\n{error[-2000:]}")
                try:
                    if client.get(url).status_code == 200:
                        ready_after = time.monotonic() - started
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.02)
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    if ready_after is None:
        raise RuntimeError(f"replica not ready after {timeout_s:.0f} s")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return ready_after, cpu


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.startup",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", default="v2.3.1")
    parser.add_argument("--runs", type=int, default=3, help="measured starts per kind")
    parser.add_argument("--source", type=Path, default=REPO_ROOT, help="checkout to run")
    parser.add_argument("--seed", action="store_true", help="also measure seeded starts")
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds per start")
    args = parser.parse_args(argv)

    rows: dict[str, list[tuple[float, float]]] = {"cold": [], "warm": []}
    if args.seed:
        rows["seeded"] = []
    with tempfile.TemporaryDirectory(prefix="startup-") as tmp:
        root = Path(tmp)

        def start(
            kind: str, cache: Path, extra: dict[str, str] | None = None
        ) -> tuple[float, float]:
            seconds, cpu = time_to_ready(
                args.source,
                args.version,
                {"NUMBA_CACHE_DIR": str(cache), **(extra or {})},
                args.timeout,
            )
            print(f"[startup] {kind:<6} {seconds:6.2f} s  cpu {cpu:6.2f} s", file=sys.stderr)
            return seconds, cpu

        for run in range(args.runs):
            rows["cold"].append(start("cold", root / f"cold-{run}"))
        # The last cold start's directory is the filled cache the warm starts reuse.
        filled = root / f"cold-{args.runs - 1}"
        for _ in range(args.runs):
            rows["warm"].append(start("warm", filled))
        for run in range(args.runs if args.seed else 0):
            fresh = root / f"seeded-{run}"
            rows["seeded"].append(start("seeded", fresh, {"MODEL_NUMBA_CACHE_SEED": str(filled)}))
            shutil.rmtree(fresh, ignore_errors=True)

    print(f"process start -> /ready 200, {args.version}, {args.source}")
    print(f"{'kind':<7} {'median':>8} {'cpu':>8}   runs: wall/cpu (s)")
    for kind, results in rows.items():
        wall = statistics.median(seconds for seconds, _ in results)
        cpu = statistics.median(used for _, used in results)
        runs = " ".join(f"{seconds:.2f}/{used:.2f}" for seconds, used in results)
        print(f"{kind:<7} {wall:7.2f}s {cpu:7.2f}s   {runs}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

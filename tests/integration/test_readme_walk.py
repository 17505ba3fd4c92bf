"""The README's tour and its rollout walk, run exactly as written against a real local stack.

The blocks are taken from README.md as they stand and run by bash in a scratch copy of the
repository's working files (routing.yaml under git, so the walk's `git checkout routing.yaml`
works; .venv, examples and bench linked), with one substitution: ``STREAMFLOW_URL`` names the
stack's gateway on a free port, which is how the README itself tells a reader on another port
to run them. The tour runs first and the walk after it, in the same directory, as a newcomer
reading top to bottom would: the walk must not depend on what the tour left behind.

The walk runs the README's own plan (three steps of 30 s): its blocks write the plan inline,
so a shortened plan would not be the walk as written, and at about two minutes it is short
enough to run as it is. The time from the controller's first entry to the promotion is the
number the README states ("promoted N s after `start`"), checked here.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from tests.integration.procs import REPO_ROOT, free_port
from tests.test_readme import README, shell_blocks

pytestmark = pytest.mark.skipif(
    shutil.which("curl") is None or shutil.which("git") is None, reason="needs curl and git"
)

WALK_TIMEOUT_S = 300.0


def block_after(marker: str) -> str:
    """The first shell block after ``marker`` in the README."""
    start = README.index(marker)
    blocks = shell_blocks(README[start:])
    assert blocks, marker
    return blocks[0][1]


TOUR = block_after("## Try it")
TRAFFIC = block_after("In the second, paced traffic")
CONTROLLER = block_after("In the third, go back to the shipped routing.yaml")
V2 = block_after("## Open Inference Protocol (V2)")
KSERVE = block_after("The `kserve` SDK's REST client")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The files the blocks use, routing.yaml committed as the repository ships it."""
    work = tmp_path_factory.mktemp("readme")
    shutil.copy(REPO_ROOT / "routing.yaml", work / "routing.yaml")
    for name in (".venv", ".venv-kserve", "examples", "bench"):
        (work / name).symlink_to(REPO_ROOT / name)
    git = ["git", "-c", "user.name=readme", "-c", "user.email=readme@example.invalid"]
    for argv in (["init", "-q"], ["add", "routing.yaml"], ["commit", "-qm", "shipped"]):
        subprocess.run([*git, *argv], cwd=work, check=True, capture_output=True)
    return work


@pytest.fixture(scope="module")
def stack(workdir: Path, artifacts_dir: Path) -> Iterator[str]:
    """``make up PORT=...``: the stack on free ports; yields the gateway's URL."""
    port = free_port()
    log_path = workdir / "stack.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "stack",
                "--routing",
                str(workdir / "routing.yaml"),
                "--artifacts",
                str(artifacts_dir),
                "--port",
                str(port),
                "--replica-base-port",
                str(free_port() + 100),
                "--ready-timeout",
                "120",
            ],  # fmt: skip
            cwd=REPO_ROOT,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 150
        while "[stack] ready in" not in log_path.read_text(errors="replace"):
            assert proc.poll() is None, log_path.read_text(errors="replace")
            assert time.monotonic() < deadline, log_path.read_text(errors="replace")
            time.sleep(0.05)
        # Said only once the gateway routes to every replica, not merely once they answer.
        replicas = httpx.get(url + "/routing", timeout=5).json()["replicas"]
        assert [r["state"] for r in replicas] == ["healthy"] * 3, replicas
        yield url
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)


def run_block(
    block: str, workdir: Path, url: str, timeout: float
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", block],
        cwd=workdir,
        env={**os.environ, "STREAMFLOW_URL": url},
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def test_the_tour_then_the_walk_as_written(stack: str, workdir: Path) -> None:
    tour = run_block(TOUR, workdir, stack, timeout=180)
    out = tour.stdout
    assert tour.returncode == 0, tour.stderr
    assert "command not found" not in tour.stderr, tour.stderr
    # Each step says what the README says it does.
    assert "x-route-reason: weighted" in out.lower()
    assert out.count("\n422\n") == 1 and "\n400\n" in out
    counts = dict(
        (version, int(n))
        for n, version in re.findall(r"^\s*(\d+) x-model-version: (v[\d.]+)", out, re.M | re.I)
    )
    assert set(counts) == {"v2.3.1", "v2.4.0"} and sum(counts.values()) == 200, out
    assert min(counts.values()) > 60, counts  # about 100 each at 50/50
    assert "x-route-reason: pinned" in out.lower() and "x-route-reason: blue_green" in out.lower()
    assert "revision" in out and "healthy" in out  # streamflow status, on the stack's port
    assert re.search(r"offline\s+v2\.3\.1 holdout AUC 0\.\d{4}", out), out
    # The tour leaves the canary at 50/50: what the walk must not assume away.
    assert "v2.4.0: 50" in (workdir / "routing.yaml").read_text()

    traffic = subprocess.Popen(
        ["bash", "-c", TRAFFIC],
        cwd=workdir,
        env={**os.environ, "STREAMFLOW_URL": stack},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        time.sleep(2)
        assert traffic.poll() is None, traffic.stderr.read() if traffic.stderr else ""
        walk = run_block(CONTROLLER, workdir, stack, timeout=WALK_TIMEOUT_S)
    finally:
        os.killpg(traffic.pid, signal.SIGTERM)
        traffic.wait(10)
        if traffic.stderr is not None:
            traffic.stderr.close()
    assert walk.returncode == 0, walk.stdout + walk.stderr
    assert "last: promote: v2.4.0 is now stable" in walk.stdout, walk.stdout

    entries = [
        json.loads(line) for line in (workdir / "routing.rollout.jsonl").read_text().splitlines()
    ]
    moves = [(e["action"], e["weight"]) for e in entries if e["action"] in ("start", "advance")]
    assert moves == [("start", 10), ("advance", 50), ("advance", 100)], moves
    took = (
        datetime.fromisoformat(entries[-1]["time"]) - datetime.fromisoformat(entries[0]["time"])
    ).total_seconds()
    claimed = int(re.search(r"promoted (\d+) s after\s+`start`", README).group(1))  # type: ignore[union-attr]
    print(walk.stdout[walk.stdout.index("rollout ") :])
    print(f"promoted {took:.1f} s after start (README: {claimed} s)")
    # Three steps of 30 s plus the checks and windows in between; the README's number is one
    # such run, and a busy machine adds a few seconds.
    assert claimed - 10 <= took <= claimed + 20, (took, claimed)
    # Promoting kept the shipped notes above the plan.
    assert (
        "# Optional. The plan of the progressive rollout" in (workdir / "routing.yaml").read_text()
    )


def test_the_v2_section_as_written(stack: str, workdir: Path) -> None:
    """curl, tritonclient.http and /predict on the same customer, as the README pastes them."""
    done = run_block(V2, workdir, stack, timeout=60)
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    # curl: the id comes back in the body and as the request id.
    assert "x-request-id: cust-42" in out.lower() and '"id":"cust-42"' in out, out
    # The versioned path is a pin, and an unknown version a 404 naming the known ones.
    assert '"model_version":"v2.4.0"' in out, out
    assert "known versions: v2.3.1, v2.4.0" in out and "\n404\n" in out, out
    # tritonclient.http's line: the version, the probability and the tier it printed.
    served = re.search(r"^(v2\.\d\.\d) \[(0\.\d+)\] \[b'(low|medium|high)'\]$", out, re.M)
    assert served is not None, out
    # /predict answers the same customer with the same probability for the same version.
    predicted = json.loads(out.strip().splitlines()[-1])
    if predicted["model_version"] == served[1]:
        assert abs(predicted["churn_probability"] - float(served[2])) < 1e-9


def test_the_kserve_sdk_call_as_written(stack: str, workdir: Path) -> None:
    """The KServe SDK's REST client, in `make kserve`'s venv, as the README pastes it."""
    if not (REPO_ROOT / ".venv-kserve" / "bin" / "python").exists():
        pytest.fail(".venv-kserve is not installed: `make kserve` (part of make test) does it")
    done = run_block(KSERVE, workdir, stack, timeout=60)
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    served = re.search(r"^(v2\.\d\.\d) cust-42 \[(0\.\d+)\]$", out, re.M)
    assert served is not None, out
    # The probability /predict gives the same customer on the version that served.
    customer = json.loads((REPO_ROOT / "examples" / "customer.json").read_text())
    pinned = httpx.post(
        f"{stack}/predict", json=customer, headers={"X-Model-Version": served[1]}, timeout=30
    )
    assert pinned.status_code == 200, pinned.text
    assert pinned.json()["churn_probability"] == float(served[2])


def test_the_controller_refuses_a_gateway_serving_another_file(
    stack: str, workdir: Path, tmp_path: Path
) -> None:
    other = tmp_path / "routing.yaml"
    other.write_text(
        (REPO_ROOT / "routing.yaml").read_text()
        + "rollout: {candidate: v2.4.0, steps: [10, 100], interval: 30s}\n"
    )
    result = subprocess.run(
        [str(REPO_ROOT / ".venv" / "bin" / "streamflow"), "rollout", "start", "--file", str(other)],
        env={**os.environ, "STREAMFLOW_URL": stack},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert f"{stack} serves routing revision" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "routing.rollout.jsonl").exists()

"""``streamflow rollout`` status, pause, resume and abort on a file and its log."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from cli import main
from routing_config import load_config
from tests.rollout.test_controller import BAKE, ROUTING, controller, setup


def test_status_renders_every_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path, log, source, clock = setup(tmp_path)
    controller(path, log, source, clock).run()
    capsys.readouterr()
    assert main(["rollout", "status", "--file", str(path)]) == 0
    out = capsys.readouterr().out
    assert "v2 against stable v1" in out
    header = next(line for line in out.splitlines() if "verdict" in line)
    assert header.split() == [
        "time", "step", "weight", "cand", "req", "stable", "req", "errors", "p99", "ms", "psi",
        "tiers", "verdict", "action",
    ]  # fmt: skip
    assert "WAITING_FOR_SAMPLES" in out and "PASS" in out and "advance" in out
    assert "10->50%" in out and "50->100%" in out
    assert out.rstrip().endswith("v2 is now stable")


def test_pause_resume_abort(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "routing.yaml"
    path.write_text(ROUTING.replace("v1: 100, v2: 0", "v1: 90, v2: 10"))
    log = tmp_path / "routing.rollout.jsonl"
    assert main(["rollout", "pause", "--file", str(path), "--reason", "lunch"]) == 0
    assert main(["rollout", "resume", "--file", str(path)]) == 0
    assert main(["rollout", "abort", "--file", str(path)]) == 0
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert [e["action"] for e in lines] == ["pause", "resume", "abort"]
    assert {e["by"] for e in lines} == {"operator"} and lines[0]["reason"] == "lunch"
    config = load_config(path).config
    assert config.weights() == {"v1": 100, "v2": 0} and config.rollout is None
    capsys.readouterr()
    assert main(["rollout", "abort", "--file", str(path)]) == 1
    assert "has no rollout section" in capsys.readouterr().err


def test_status_without_a_log(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "routing.yaml"
    path.write_text(ROUTING)
    assert main(["rollout", "status", "--file", str(path)]) == 1
    assert "no decision log" in capsys.readouterr().err


def test_status_shows_the_shadow_bake(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path, log, source, clock = setup(tmp_path)
    path.write_text(ROUTING + BAKE)
    controller(path, log, source, clock).run()
    capsys.readouterr()
    assert main(["rollout", "status", "--file", str(path)]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()]
    bake = [r for r in rows if r[1:3] == ["bake", "shadow"]]
    assert bake and bake[-1][-3:] == ["100.0%", "PASS", "hold"]  # every tier agreed
    assert any(r[1:3] == ["1", "0->10%"] and r[-1] == "advance" for r in rows)


def test_resume_accept_is_logged_and_status_shows_a_halt(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, log, source, clock = setup(tmp_path, candidate_error=0.012, stable_error=0.012)
    ctl = controller(path, log, source, clock)
    state = ctl.begin()
    for _ in range(65):
        clock.sleep(1)
        ctl.check(state)
    capsys.readouterr()
    assert main(["rollout", "status", "--file", str(path)]) == 0
    out = capsys.readouterr().out
    assert "HALTED: the step's weights stay" in out
    assert "evidence against equal rates" in out and "last check (HALTED)" in out
    assert main(["rollout", "resume", "--accept", "--file", str(path)]) == 0
    assert log.read()[-1] == {**log.read()[-1], "action": "resume", "accept": True}


def test_bad_webhook_url_and_listen_address_are_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "routing.yaml"
    path.write_text(ROUTING)
    monkeypatch.setenv("STREAMFLOW_WEBHOOK_URL", "hooks.example/services/secret-part")
    assert main(["rollout", "start", "--file", str(path)]) == 1
    err = capsys.readouterr().err
    assert "STREAMFLOW_WEBHOOK_URL: must be an http:// or https:// URL" in err
    assert "secret-part" not in err
    assert main(["rollout", "analysis", "--file", str(path), "--listen", "8090"]) == 1
    assert "--listen: '8090' is not HOST:PORT" in capsys.readouterr().err


def test_status_into_a_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    """`streamflow rollout status | head`: no BrokenPipeError traceback once head has read."""
    path, log, source, clock = setup(tmp_path)
    controller(path, log, source, clock).run()
    # A table far longer than a pipe's buffer (64 KiB): the writer meets the closed pipe.
    text = log.path.read_text()
    log.path.write_text(text * (3_000_000 // len(text) + 1))
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway", "rollout", "status", "--file", str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.readline().startswith(b"rollout ")
    proc.stdout.close()
    err = proc.stderr.read().decode()
    proc.stderr.close()
    assert proc.wait(timeout=30) == 141
    assert "Traceback" not in err and "BrokenPipeError" not in err, err

import hashlib
import json
import os
import re
import socket
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

from gateway import cli
from gateway.config import parse_config
from tests.gateway.fakes import DESIGN_EXAMPLE

# The DESIGN.md example, comments included, at a 90/10 canary.
SAMPLE = DESIGN_EXAMPLE.replace("{v2.3.1: 95, v2.4.0: 5}", "{v2.3.1: 90, v2.4.0: 10}")
WEIGHTS_LINE = 9  # 0-based index of the canary.weights line
LIVE_LINE = 14

# The same layout in block style, indented by 4 with flush sequences, behind a `---` header.
BLOCK_SAMPLE = """\
# routing for the churn model
---
service: streamflow-churn
stable: "v2.3.1"   # quoted on purpose
mode: canary

versions:
    v2.3.1:
        replicas:
        - http://model-v2-3-1-a:8000   # zone a
        - http://model-v2-3-1-b:8000
    v2.4.0:
        replicas:
        - http://model-v2-4-0-a:8000
canary:
    weights:
        v2.3.1: 90   # stable
        v2.4.0: 10   # canary
"""


@pytest.fixture(autouse=True)
def _no_routing_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(cli.ROUTING_FILE_ENV, raising=False)


@pytest.fixture
def routing_file(tmp_path: Path) -> Path:
    path = tmp_path / "routing.yaml"
    path.write_text(SAMPLE)
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def weights_of(path: Path) -> dict[str, int]:
    return dict(parse_config(path.read_text()).config.weights())


def assert_only_lines_changed(before: str, after: str, changed: set[int]) -> None:
    old, new = before.splitlines(), after.splitlines()
    assert len(old) == len(new)
    for i, (a, b) in enumerate(zip(old, new, strict=True)):
        if i in changed:
            assert a != b
            assert a.partition("#")[2] == b.partition("#")[2]  # the comment itself is kept
        else:
            assert a == b, f"line {i + 1} changed"


# --- validate -----------------------------------------------------------------------------------


def test_validate_ok(capsys: pytest.CaptureFixture[str], routing_file: Path) -> None:
    code, out, err = run(capsys, "validate", str(routing_file))
    revision = hashlib.sha256(SAMPLE.encode()).hexdigest()[:12]
    assert code == 0, err
    assert out == (
        f"ok: {routing_file} (revision {revision}, mode canary, weights v2.3.1=90 v2.4.0=10)\n"
    )


def test_validate_defaults_to_routing_yaml_in_cwd(
    capsys: pytest.CaptureFixture[str], routing_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(routing_file.parent)
    code, out, _ = run(capsys, "validate")
    assert code == 0
    assert out.startswith("ok: routing.yaml (revision ")


def test_validate_blue_green_names_the_live_version(
    capsys: pytest.CaptureFixture[str], routing_file: Path
) -> None:
    routing_file.write_text(
        SAMPLE.replace("mode: canary ", "mode: blue_green").replace("live: blue ", "live: green")
    )
    code, out, err = run(capsys, "validate", str(routing_file))
    assert code == 0, err
    assert "mode blue_green, live green = v2.4.0, weights v2.3.1=0 v2.4.0=100)" in out


def test_validate_reports_each_error_on_stderr(
    capsys: pytest.CaptureFixture[str], routing_file: Path
) -> None:
    routing_file.write_text(
        SAMPLE.replace("v2.4.0: 10}", "v2.4.0: 8}").replace("stable: v2.3.1", "stable: v9")
    )
    code, out, err = run(capsys, "validate", str(routing_file))
    assert code == 1
    assert out == ""
    lines = err.splitlines()
    assert lines[0] == f"invalid: {routing_file}"
    assert "  canary.weights: sum to 98, must be 100 (line 10)" in lines
    assert any(line.startswith("  stable: unknown version 'v9'") for line in lines)


def test_validate_missing_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run(capsys, "validate", str(tmp_path / "nope.yaml"))
    assert code == 1
    assert "cannot read" in err


# --- set-weights --------------------------------------------------------------------------------


def test_set_weights_one_version_gives_the_rest_to_the_other(
    capsys: pytest.CaptureFixture[str], routing_file: Path
) -> None:
    code, out, err = run(capsys, "set-weights", "v2.4.0=25", "--file", str(routing_file))
    assert code == 0, err
    assert weights_of(routing_file) == {"v2.3.1": 75, "v2.4.0": 25}
    assert_only_lines_changed(SAMPLE, routing_file.read_text(), {WEIGHTS_LINE})
    assert re.search(r"v2\.3\.1\s+90\s+->\s+75", out)
    assert re.search(r"v2\.4\.0\s+10\s+->\s+25", out)
    assert "written (revision " in out


def test_set_weights_all_versions(capsys: pytest.CaptureFixture[str], routing_file: Path) -> None:
    code, _, err = run(capsys, "set-weights", "v2.3.1=50", "v2.4.0=50", "--file", str(routing_file))
    assert code == 0, err
    assert weights_of(routing_file) == {"v2.3.1": 50, "v2.4.0": 50}


def test_set_weights_keeps_block_layout_and_header(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "routing.yaml"
    path.write_text(BLOCK_SAMPLE)
    code, _, err = run(capsys, "set-weights", "v2.4.0=100", "--file", str(path))
    assert code == 0, err
    after = path.read_text()
    assert weights_of(path) == {"v2.3.1": 0, "v2.4.0": 100}
    lines = BLOCK_SAMPLE.splitlines()
    changed = {
        lines.index("        v2.3.1: 90   # stable"),
        lines.index("        v2.4.0: 10   # canary"),
    }
    assert_only_lines_changed(BLOCK_SAMPLE, after, changed)


def test_set_weights_without_an_obvious_remainder_must_sum_to_100(
    capsys: pytest.CaptureFixture[str], routing_file: Path
) -> None:
    code, _, err = run(capsys, "set-weights", "v2.3.1=50", "v2.4.0=40", "--file", str(routing_file))
    assert code == 1
    assert "sum to 90, not 100" in err
    assert routing_file.read_text() == SAMPLE


def test_set_weights_invalid_result_leaves_file_untouched(
    capsys: pytest.CaptureFixture[str], routing_file: Path
) -> None:
    code, out, err = run(capsys, "set-weights", "v2.4.0=120", "--file", str(routing_file))
    assert code == 1
    assert out == ""
    assert "not written" in err
    assert "canary.weights.v2.3.1: negative weight -20 (line 10)" in err
    assert routing_file.read_text() == SAMPLE
    assert os.listdir(routing_file.parent) == ["routing.yaml"]


def test_set_weights_unknown_version_is_rejected_by_validation(
    capsys: pytest.CaptureFixture[str], routing_file: Path
) -> None:
    code, _, err = run(
        capsys,
        "set-weights",
        "v2.3.1=0",
        "v2.4.0=0",
        "v9.9.9=100",
        "--file",
        str(routing_file),
    )
    assert code == 1
    assert "canary.weights.v9.9.9: unknown version 'v9.9.9'" in err
    assert routing_file.read_text() == SAMPLE


@pytest.mark.parametrize("argument", ["v2.4.0", "v2.4.0=abc", "=5", "v2.4.0=2.5"])
def test_set_weights_bad_argument_syntax(
    capsys: pytest.CaptureFixture[str], routing_file: Path, argument: str
) -> None:
    code, _, err = run(capsys, "set-weights", argument, "--file", str(routing_file))
    assert code == 2
    assert "argument VERSION=PERCENT" in err
    assert repr(argument) in err
    assert routing_file.read_text() == SAMPLE


def test_set_weights_same_version_twice(
    capsys: pytest.CaptureFixture[str], routing_file: Path
) -> None:
    code, _, err = run(capsys, "set-weights", "v2.4.0=20", "v2.4.0=30", "--file", str(routing_file))
    assert code == 2
    assert "v2.4.0 is given more than once" in err


def test_set_weights_keeps_mode_and_writes_through_symlink(
    capsys: pytest.CaptureFixture[str], routing_file: Path
) -> None:
    routing_file.chmod(0o640)
    link = routing_file.parent / "current.yaml"
    link.symlink_to(routing_file.name)
    code, _, err = run(capsys, "set-weights", "v2.4.0=30", "--file", str(link))
    assert code == 0, err
    assert link.is_symlink()
    assert stat.S_IMODE(routing_file.stat().st_mode) == 0o640
    assert weights_of(routing_file) == {"v2.3.1": 70, "v2.4.0": 30}
    assert sorted(os.listdir(routing_file.parent)) == ["current.yaml", "routing.yaml"]


def test_set_weights_keeps_crlf_line_endings(
    capsys: pytest.CaptureFixture[str], routing_file: Path
) -> None:
    routing_file.write_bytes(SAMPLE.replace("\n", "\r\n").encode())
    code, _, err = run(capsys, "set-weights", "v2.4.0=25", "--file", str(routing_file))
    assert code == 0, err
    data = routing_file.read_bytes()
    assert data.count(b"\r\n") == SAMPLE.count("\n")
    assert data.count(b"\n") == SAMPLE.count("\n")


def test_plan_weights_rules() -> None:
    assert cli.plan_weights({"a": 90, "b": 10}, {"b": 25}) == {"a": 75, "b": 25}
    # The given weights sum to 100, so versions not named drop to 0.
    assert cli.plan_weights({"a": 50, "b": 30, "c": 20}, {"a": 100}) == {"a": 100, "b": 0, "c": 0}
    # A version new to the weights map is added.
    assert cli.plan_weights({"a": 100}, {"b": 5}) == {"a": 95, "b": 5}
    with pytest.raises(cli.CommandError, match="b, c also have weight"):
        cli.plan_weights({"a": 50, "b": 30, "c": 20}, {"a": 60})


# --- switch -------------------------------------------------------------------------------------


def test_switch_sets_live_and_warns_in_canary_mode(
    capsys: pytest.CaptureFixture[str], routing_file: Path
) -> None:
    code, out, err = run(capsys, "switch", "green", "--file", str(routing_file))
    assert code == 0, err
    assert_only_lines_changed(SAMPLE, routing_file.read_text(), {LIVE_LINE})
    assert parse_config(routing_file.read_text()).config.live_version() == "v2.4.0"
    assert "blue_green.live blue (v2.3.1) -> green (v2.4.0)" in out
    assert err.startswith("warning: mode is canary")


def test_switch_in_blue_green_mode_has_no_warning(
    capsys: pytest.CaptureFixture[str], routing_file: Path
) -> None:
    routing_file.write_text(SAMPLE.replace("mode: canary ", "mode: blue_green"))
    code, _, err = run(capsys, "switch", "green", "--file", str(routing_file))
    assert code == 0
    assert err == ""


def test_switch_to_the_live_colour_changes_nothing(
    capsys: pytest.CaptureFixture[str], routing_file: Path
) -> None:
    before = routing_file.stat().st_mtime_ns
    code, out, _ = run(capsys, "switch", "blue", "--file", str(routing_file))
    assert code == 0
    assert "already live" in out
    assert routing_file.stat().st_mtime_ns == before


def test_switch_without_blue_green_section(
    capsys: pytest.CaptureFixture[str], routing_file: Path
) -> None:
    text = re.sub(r"blue_green:.*?(?=shadow:)", "", SAMPLE, flags=re.S)
    routing_file.write_text(text)
    code, _, err = run(capsys, "switch", "green", "--file", str(routing_file))
    assert code == 1
    assert "has no blue_green section" in err
    assert routing_file.read_text() == text


def test_switch_rejects_other_colours(
    capsys: pytest.CaptureFixture[str], routing_file: Path
) -> None:
    code, _, err = run(capsys, "switch", "red", "--file", str(routing_file))
    assert code == 2
    assert "invalid choice: 'red'" in err


# --- diff ---------------------------------------------------------------------------------------


def test_diff_shows_shares_and_keys_that_move(
    capsys: pytest.CaptureFixture[str], routing_file: Path
) -> None:
    proposed = routing_file.parent / "proposed.yaml"
    proposed.write_text(SAMPLE.replace("v2.3.1: 90, v2.4.0: 10", "v2.3.1: 75, v2.4.0: 25"))
    code, out, err = run(capsys, "diff", str(proposed), "--against", str(routing_file))
    assert code == 0, err
    assert "mode: canary (unchanged)" in out
    assert re.search(r"v2\.3\.1\s+90%\s+->\s+75%\s+-15", out)
    assert re.search(r"v2\.4\.0\s+10%\s+->\s+25%\s+\+15", out)
    moved = re.search(r"v2\.3\.1\s+->\s+v2\.4\.0\s+([\d.]+)%", out)
    assert moved is not None
    assert 13.0 < float(moved.group(1)) < 17.0
    # Ramp-safe: raising v2.4.0 moves nobody back to v2.3.1.
    assert not re.search(r"v2\.4\.0\s+->\s+v2\.3\.1", out)
    assert "other changes" not in out


def test_diff_mode_live_and_other_changes(
    capsys: pytest.CaptureFixture[str], routing_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    proposed = routing_file.parent / "proposed.yaml"
    proposed.write_text(
        SAMPLE.replace("mode: canary ", "mode: blue_green")
        .replace("live: blue ", "live: green")
        .replace("percent: 10", "percent: 5")
    )
    monkeypatch.chdir(routing_file.parent)  # --against defaults to ./routing.yaml
    code, out, err = run(capsys, "diff", "proposed.yaml")
    assert code == 0, err
    assert "mode: canary -> blue_green" in out
    assert "blue/green live: blue (v2.3.1) -> green (v2.4.0)" in out
    moved = re.search(r"v2\.3\.1\s+->\s+v2\.4\.0\s+([\d.]+)%", out)
    assert moved is not None
    assert 88.0 < float(moved.group(1)) < 92.0  # every key on blue moves to green
    assert "shadow.percent: 10 -> 5" in out


def test_diff_identical(capsys: pytest.CaptureFixture[str], routing_file: Path) -> None:
    code, out, _ = run(capsys, "diff", str(routing_file), "--against", str(routing_file))
    assert code == 0
    assert "no changes" in out


def test_diff_invalid_file(capsys: pytest.CaptureFixture[str], routing_file: Path) -> None:
    proposed = routing_file.parent / "proposed.yaml"
    proposed.write_text(SAMPLE.replace("v2.4.0: 10}", "v2.4.0: 12}"))
    code, out, err = run(capsys, "diff", str(proposed), "--against", str(routing_file))
    assert code == 1
    assert out == ""
    assert f"invalid: {proposed}" in err
    assert "canary.weights: sum to 102, must be 100 (line 10)" in err


# --- status -------------------------------------------------------------------------------------

ROUTING_DOC: dict[str, Any] = {
    "service": "streamflow-churn",
    "mode": "canary",
    "stable": "v2.3.1",
    "revision": "3c1247697ef6",
    "loaded_at": "2025-01-01T12:00:00Z",
    "last_reload_error": {
        "at": "2025-01-01T12:05:00Z",
        "messages": ["canary.weights: sum to 98, must be 100 (line 10)"],
    },
    "weights": {"v2.3.1": 90, "v2.4.0": 10},
    "blue_green": {"blue": "v2.3.1", "green": "v2.4.0", "live": "blue"},
    "sticky_header": "X-Customer-Id",
    "pinning": {"header": "X-Model-Version", "allow": ["v2.3.1", "v2.4.0"]},
    "shadow": {
        "configured": {"version": "v2.4.0", "percent": 10},
        "active": False,
        "note": "shadow mirroring is not implemented yet",
    },
    "replicas": [
        {
            "version": "v2.3.1",
            "url": "http://model-v2-3-1-a:8000",
            "address": "127.0.0.1:9101",
            "state": "healthy",
            "healthy": True,
            "consecutive_failures": 0,
            "inflight": 2,
            "last_error": None,
        },
        {
            "version": "v2.4.0",
            "url": "http://model-v2-4-0-a:8000",
            "address": "127.0.0.1:9103",
            "state": "ejected",
            "healthy": False,
            "consecutive_failures": 3,
            "inflight": 0,
            "last_error": "connect error",
        },
    ],
}


def test_status_prints_config_and_replicas(capsys: pytest.CaptureFixture[str]) -> None:
    with respx.mock(assert_all_called=True) as router:
        router.get("http://gw.test:8080/routing").respond(json=ROUTING_DOC)
        code, out, err = run(capsys, "status", "--url", "http://gw.test:8080/")
    assert code == 0, err
    lines = out.splitlines()
    assert re.match(r"service\s+streamflow-churn$", lines[0])
    assert any(
        re.match(r"revision\s+3c1247697ef6 \(loaded 2025-01-01T12:00:00Z\)$", x) for x in lines
    )
    assert any(re.match(r"reload\s+FAILED at 2025-01-01T12:05:00Z", x) for x in lines)
    assert any(x.strip() == "canary.weights: sum to 98, must be 100 (line 10)" for x in lines)
    assert any(re.match(r"weights\s+v2\.3\.1 90%, v2\.4\.0 10%$", x) for x in lines)
    assert any(re.match(r"shadow\s+v2\.4\.0 10% configured, NOT active", x) for x in lines)
    header = next(x for x in lines if x.startswith("VERSION"))
    assert header.split() == [
        "VERSION",
        "URL",
        "ADDRESS",
        "STATE",
        "FAILS",
        "IN-FLIGHT",
        "LAST",
        "ERROR",
    ]
    rows = [x.split() for x in lines[lines.index(header) + 1 :]]
    assert rows[0] == [
        "v2.3.1",
        "http://model-v2-3-1-a:8000",
        "127.0.0.1:9101",
        "healthy",
        "0",
        "2",
    ]
    assert rows[1][:6] == [
        "v2.4.0",
        "http://model-v2-4-0-a:8000",
        "127.0.0.1:9103",
        "ejected",
        "3",
        "0",
    ]


def test_status_blue_green_shows_live_colour() -> None:
    doc = {**ROUTING_DOC, "mode": "blue_green", "last_reload_error": None}
    doc["blue_green"] = {"blue": "v2.3.1", "green": "v2.4.0", "live": "green"}
    lines = cli.format_status(doc)
    assert any(re.match(r"live\s+green \(v2\.4\.0\)", x) for x in lines)
    assert any(re.match(r"reload\s+ok$", x) for x in lines)
    assert not any(x.startswith("weights") for x in lines)


def test_status_tolerates_missing_keys() -> None:
    lines = cli.format_status({"service": "svc"})
    assert lines[0].split() == ["service", "svc"]
    assert lines[-1] == "no replicas reported"


def test_fetch_routing_with_mock_transport() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(200, json=ROUTING_DOC)

    data = cli.fetch_routing("http://gw.test", transport=httpx.MockTransport(handler))
    assert data == json.loads(json.dumps(ROUTING_DOC))
    assert seen == ["http://gw.test/routing"]


def test_fetch_routing_http_error() -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(500, text="boom"))
    with pytest.raises(cli.CommandError, match="answered GET /routing with 500"):
        cli.fetch_routing("http://gw.test", transport=transport)


def test_status_connection_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as sock:  # a port that was free a moment ago and has no listener now
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    code, out, err = run(capsys, "status", "--url", url)
    assert code == 1
    assert out == ""
    assert err == f"no gateway answering at {url}\n"


# --- serve and entry points ---------------------------------------------------------------------


def test_serve_runs_the_app_factory(monkeypatch: pytest.MonkeyPatch) -> None:
    import uvicorn

    calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
    monkeypatch.setattr(uvicorn, "run", lambda *a, **kw: calls.append((a, kw)))
    assert cli.main(["serve", "--port", "9999", "--workers", "2"]) == 0
    assert calls == [
        (
            ("gateway.app:create_app",),
            {
                "factory": True,
                "host": "127.0.0.1",
                "port": 9999,
                "workers": 2,
                "log_level": "info",
                "access_log": False,
                "timeout_graceful_shutdown": 10,
                "http": "gateway.server:GatewayProtocol",
            },
        )
    ]


def test_serve_with_workers_shares_metrics_through_a_private_dir(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import uvicorn

    monkeypatch.delenv("GATEWAY_METRICS_DIR", raising=False)
    seen: list[Path] = []

    def run(*args: Any, **kwargs: Any) -> None:
        directory = Path(os.environ["GATEWAY_METRICS_DIR"])  # what the workers will read
        assert directory.is_dir()
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700
        (directory / "worker-1-a.json").write_text("{}")
        seen.append(directory)

    monkeypatch.setattr(uvicorn, "run", run)
    assert cli.main(["serve", "--workers", "3"]) == 0
    assert len(seen) == 1
    assert not seen[0].exists()  # removed, files and all, when uvicorn returned
    assert "GATEWAY_METRICS_DIR" not in os.environ


def test_serve_keeps_the_operators_metrics_dir_without_an_earlier_runs_files(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import uvicorn

    mine = tmp_path / "metrics"
    mine.mkdir()
    for name in ("worker-11-old.json", "worker-12-old.json.tmp", "README"):
        (mine / name).write_text("x")
    monkeypatch.setenv("GATEWAY_METRICS_DIR", str(mine))
    seen: list[list[str]] = []
    monkeypatch.setattr(
        uvicorn,
        "run",
        lambda *a, **kw: seen.append([os.environ["GATEWAY_METRICS_DIR"], *os.listdir(mine)]),
    )
    assert cli.main(["serve", "--workers", "2"]) == 0
    assert seen == [[str(mine), "README"]]
    assert sorted(os.listdir(mine)) == ["README"]
    assert os.environ["GATEWAY_METRICS_DIR"] == str(mine)

    missing = tmp_path / "new" / "metrics"
    monkeypatch.setenv("GATEWAY_METRICS_DIR", str(missing))
    assert cli.main(["serve"]) == 0
    assert missing.is_dir()


def test_serve_with_one_worker_shares_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    import uvicorn

    monkeypatch.delenv("GATEWAY_METRICS_DIR", raising=False)
    seen: list[str | None] = []
    monkeypatch.setattr(
        uvicorn, "run", lambda *a, **kw: seen.append(os.environ.get("GATEWAY_METRICS_DIR"))
    )
    assert cli.main(["serve"]) == 0
    assert seen == [None]


def test_serve_turns_the_access_log_on_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import uvicorn

    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(uvicorn, "run", lambda *a, **kw: calls.append(kw))
    monkeypatch.setenv("GATEWAY_ACCESS_LOG", "true")
    assert cli.main(["serve"]) == 0
    assert calls[0]["access_log"] is True


def test_serve_refuses_a_bad_setting_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import uvicorn

    monkeypatch.setattr(uvicorn, "run", lambda *a, **kw: pytest.fail("must not start"))
    monkeypatch.setenv("GATEWAY_READ_TIMEOUT_S", "soon")
    with pytest.raises(SystemExit) as stopped:
        cli.main(["serve"])
    message = str(stopped.value.code)
    assert message.startswith("gateway refused to start: GATEWAY_READ_TIMEOUT_S:")
    assert "number" in message


def test_no_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys)
    assert code == 2
    assert "usage: streamflow" in err


def test_python_dash_m_gateway(routing_file: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "gateway", "validate", str(routing_file)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"ok: {routing_file} ")


def test_mode_switches_routing_and_keeps_layout(
    capsys: pytest.CaptureFixture[str], routing_file: Path
) -> None:
    code, out, err = run(capsys, "mode", "blue_green", "--file", str(routing_file))
    assert code == 0, err
    mode_line = next(i for i, line in enumerate(SAMPLE.splitlines()) if line.startswith("mode:"))
    assert_only_lines_changed(SAMPLE, routing_file.read_text(), {mode_line})
    assert parse_config(routing_file.read_text()).config.mode == "blue_green"
    assert "every new request goes to blue (v2.3.1)" in out
    code, out, _ = run(capsys, "mode", "blue_green", "--file", str(routing_file))
    assert code == 0 and out.startswith("unchanged")


def test_mode_needs_its_section(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "routing.yaml"
    lines = SAMPLE.splitlines(keepends=True)
    start = next(i for i, line in enumerate(lines) if line.startswith("blue_green:"))
    text = "".join(lines[:start] + lines[start + 4 :])  # drop the section and its 3 keys
    assert "live:" not in text
    path.write_text(text)
    code, _, err = run(capsys, "mode", "blue_green", "--file", str(path))
    assert code == 1
    assert "blue_green" in err
    assert path.read_text() == text

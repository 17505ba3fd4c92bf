"""`streamflow serve`: the uvicorn call and the workers' shared metrics directory."""

import os
import stat
from pathlib import Path
from typing import Any

import pytest

import cli


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


def test_serve_refuses_an_admin_port_equal_to_the_client_port(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import uvicorn

    monkeypatch.setattr(uvicorn, "run", lambda *a, **kw: pytest.fail("must not start"))
    monkeypatch.setenv("GATEWAY_ADMIN_PORT", "9999")
    assert cli.main(["serve", "--port", "9999"]) != 0
    err = capsys.readouterr().err
    assert "GATEWAY_ADMIN_PORT=9999" in err
    assert "--port" in err


def test_serve_without_an_admin_port_runs_one_listener(monkeypatch: pytest.MonkeyPatch) -> None:
    import uvicorn

    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(uvicorn, "run", lambda *a, **kw: calls.append(kw))
    monkeypatch.setenv("GATEWAY_ADMIN_PORT", "0")
    assert cli.main(["serve", "--port", "9999"]) == 0
    assert [c["port"] for c in calls] == [9999]


def test_the_uvicorn_pieces_the_admin_listener_uses_are_there() -> None:
    """serve binds both sockets itself and hands them to uvicorn's Server or Multiprocess (as
    gunicorn's uvicorn worker does); an upgrade that moves these fails here, naming them."""
    import inspect

    from uvicorn import Config, Server
    from uvicorn.config import STARTUP_FAILURE
    from uvicorn.supervisors import Multiprocess

    assert callable(Config.bind_socket)
    assert "sockets" in inspect.signature(Server.run).parameters
    assert list(inspect.signature(Multiprocess).parameters)[:2] == ["config", "sockets"]
    assert STARTUP_FAILURE == 3

"""Which paths answer on which port when the gateway has an admin port (gateway/listeners.py)."""

from __future__ import annotations

import pytest

from gateway.listeners import is_client_path, refused

ADMIN = 9090
CLIENT = 8080


def scope(path: str, port: int | None) -> dict[str, object]:
    return {"type": "http", "path": path, "server": None if port is None else ("10.0.0.5", port)}


@pytest.mark.parametrize(
    "path",
    ["/predict", "/predict/batch", "/health", "/ready", "/outcomes", "/v2", "/v2/health/live"],
)
def test_client_paths_answer_on_both_ports(path: str) -> None:
    assert is_client_path(path)
    assert not refused(scope(path, CLIENT), ADMIN)
    assert not refused(scope(path, ADMIN), ADMIN)


@pytest.mark.parametrize(
    "path",
    ["/routing", "/stats", "/shadow", "/quality", "/metrics", "/ui", "/ui/assets/index.html",
     "/docs", "/docs/assets/swagger-ui.css", "/openapi.json", "/", "/v2x", "/predictx",
     "/a-later-endpoint"],
)  # fmt: skip
def test_every_other_path_answers_only_on_the_admin_port(path: str) -> None:
    assert not is_client_path(path)
    assert refused(scope(path, CLIENT), ADMIN)
    assert not refused(scope(path, ADMIN), ADMIN)


def test_an_unknown_local_port_counts_as_the_client_port() -> None:
    assert refused(scope("/routing", None), ADMIN)


def test_without_an_admin_port_every_path_answers_everywhere() -> None:
    assert not refused(scope("/routing", CLIENT), 0)
    assert not refused(scope("/metrics", None), 0)

"""The numbers and rules of gateway/client_limits.py (the wire behaviour is in
tests/integration/test_slow_clients.py)."""

from __future__ import annotations

import json
import resource

import pytest

from gateway.client_limits import connection_cap, raise_fd_limit
from gateway.settings import GatewaySettings
from httpserver.limits import ClientLimits, error_answer


def test_a_body_is_due_after_the_timeout_plus_its_length_at_the_minimum_rate() -> None:
    limits = ClientLimits(body_timeout_s=10, body_min_rate=1000, max_body_bytes=50_000)
    assert limits.body_due(100.0, 0) == 110.0
    assert limits.body_due(100.0, 20_000) == 130.0
    # A declared length over the limit, or a chunked body, counts as the limit: still bounded.
    assert limits.body_due(100.0, 10**12) == 160.0
    assert limits.body_due(100.0, None) == 160.0


def test_the_cap_stays_under_half_the_open_file_limit(caplog: pytest.LogCaptureFixture) -> None:
    assert connection_cap(10_000, 1_048_576) == 10_000
    assert connection_cap(10_000, 4096) == 2048
    assert "GATEWAY_MAX_CONNECTIONS=10000" in caplog.text
    assert connection_cap(10, resource.RLIM_INFINITY) == 10


def test_the_soft_open_file_limit_is_raised_to_the_hard_one() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        if hard != resource.RLIM_INFINITY and hard > 64:
            resource.setrlimit(resource.RLIMIT_NOFILE, (64, hard))
        assert raise_fd_limit() == hard
        assert resource.getrlimit(resource.RLIMIT_NOFILE) == (hard, hard)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_error_answers_close_the_connection_and_a_503_says_when_to_retry() -> None:
    answer = error_answer(b"HTTP/1.1 408 Request Timeout\r\n", b"", "request_timeout", "late")
    head, _, body = answer.partition(b"\r\n\r\n")
    assert json.loads(body) == {"error": "request_timeout", "detail": "late"}
    assert b"connection: close" in head and b"retry-after" not in head
    assert f"content-length: {len(body)}".encode() in head
    refusal = error_answer(b"HTTP/1.1 503 Service Unavailable\r\n", b"", "full", "x")
    assert b"retry-after: 1\r\n" in refusal


@pytest.mark.parametrize(
    "name", ["header_timeout_s", "body_timeout_s", "body_min_rate", "max_connections"]
)
def test_a_limit_of_zero_is_refused_naming_the_setting(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gateway.settings import load_settings

    monkeypatch.setenv(f"GATEWAY_{name.upper()}", "0")
    with pytest.raises(SystemExit, match=f"GATEWAY_{name.upper()}"):
        load_settings()
    monkeypatch.delenv(f"GATEWAY_{name.upper()}")
    assert getattr(GatewaySettings(), name) > 0

"""Gateway settings read from the environment, as a process would."""

from __future__ import annotations

import pytest

from gateway.settings import GatewaySettings


def test_a_prediction_log_url_turns_the_log_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GATEWAY_PREDICTION_LOG", raising=False)
    monkeypatch.setenv("GATEWAY_PREDICTION_LOG_URL", "postgresql://gw@db/predictions")
    assert GatewaySettings().prediction_log is True


def test_the_log_stays_off_when_told_so_even_with_a_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_PREDICTION_LOG", "false")
    monkeypatch.setenv("GATEWAY_PREDICTION_LOG_URL", "postgresql://gw@db/predictions")
    assert GatewaySettings().prediction_log is False


def test_no_url_leaves_the_log_off(monkeypatch: pytest.MonkeyPatch) -> None:
    # An optional Secret that does not exist gives an empty variable: still off.
    monkeypatch.delenv("GATEWAY_PREDICTION_LOG", raising=False)
    monkeypatch.setenv("GATEWAY_PREDICTION_LOG_URL", "")
    assert GatewaySettings().prediction_log is False

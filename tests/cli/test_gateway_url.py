"""$STREAMFLOW_URL points every command that talks to a gateway at one; a flag still wins."""

from __future__ import annotations

import pytest

from cli import build_parser
from cli.base import DEFAULT_GATEWAY_URL, GATEWAY_URL_ENV

URL = "http://127.0.0.1:8081"
# Every command that reads or writes a running gateway, with the attribute holding the URL.
COMMANDS: list[tuple[list[str], str]] = [
    (["status"], "url"),
    (["shadow"], "url"),
    (["quality"], "url"),
    (["outcomes", "load", "outcomes.csv"], "url"),
    (["rollout", "start"], "default_gateway"),
]


@pytest.mark.parametrize(("argv", "attribute"), COMMANDS)
def test_every_gateway_command_reads_the_variable(
    monkeypatch: pytest.MonkeyPatch, argv: list[str], attribute: str
) -> None:
    monkeypatch.setenv(GATEWAY_URL_ENV, URL)
    assert getattr(build_parser().parse_args(argv), attribute) == URL


@pytest.mark.parametrize(("argv", "attribute"), COMMANDS)
def test_without_it_the_default_port(
    monkeypatch: pytest.MonkeyPatch, argv: list[str], attribute: str
) -> None:
    monkeypatch.delenv(GATEWAY_URL_ENV, raising=False)
    assert getattr(build_parser().parse_args(argv), attribute) == DEFAULT_GATEWAY_URL


@pytest.mark.parametrize("argv", [c[0] for c in COMMANDS if c[1] == "url"])
def test_the_flag_wins(monkeypatch: pytest.MonkeyPatch, argv: list[str]) -> None:
    monkeypatch.setenv(GATEWAY_URL_ENV, URL)
    assert build_parser().parse_args([*argv, "--url", "http://127.0.0.1:9"]).url == (
        "http://127.0.0.1:9"
    )


def test_rollout_start_gateway_flag_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(GATEWAY_URL_ENV, URL)
    args = build_parser().parse_args(["rollout", "start", "--gateway", "http://127.0.0.1:9"])
    assert (args.gateway or [args.default_gateway]) == ["http://127.0.0.1:9"]


def test_help_names_the_variable_and_its_value(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(GATEWAY_URL_ENV, URL)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["status", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert f"${GATEWAY_URL_ENV}" in out and f"now {URL}" in out


def test_an_empty_variable_is_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(GATEWAY_URL_ENV, "")
    assert build_parser().parse_args(["status"]).url == DEFAULT_GATEWAY_URL

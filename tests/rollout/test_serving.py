"""The controller refuses a gateway that serves another routing revision than the file's."""

from __future__ import annotations

import httpx
import pytest

from rollout.sources.serving import RevisionMismatch, check_gateways_serve, served_revision


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_a_gateway_serving_the_file_passes_at_once() -> None:
    clock = Clock()
    check_gateways_serve(
        ["http://a"], lambda: "abc", lambda g: "abc", path="r.yaml", clock=clock, sleep=clock.sleep
    )
    assert clock.now == 0.0


def test_a_reload_in_flight_is_waited_for() -> None:
    clock = Clock()
    served = iter(["old", "old", "new"])
    check_gateways_serve(
        ["http://a"],
        lambda: "new",
        lambda g: next(served),
        path="r.yaml",
        clock=clock,
        sleep=clock.sleep,
    )
    assert 0 < clock.now < 3.0


def test_another_revision_is_refused_naming_both() -> None:
    clock = Clock()
    with pytest.raises(RevisionMismatch) as caught:
        check_gateways_serve(
            ["http://a", "http://b"],
            lambda: "f1le",
            lambda g: "f1le" if g == "http://a" else "0ther",
            path="routing.yaml",
            clock=clock,
            sleep=clock.sleep,
        )
    said = str(caught.value)
    assert "http://b serves routing revision 0ther" in said
    assert "http://a" not in said.split(",")[0]
    assert "routing.yaml is revision f1le" in said and "--gateway" in said
    assert clock.now >= 3.0


def test_served_revision_reads_routing() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/routing"
        return httpx.Response(200, json={"revision": "c9289eeee5fa"})

    with httpx.Client(transport=httpx.MockTransport(answer)) as client:
        assert served_revision(client, "http://gw:8080/") == "c9289eeee5fa"


def test_a_gateway_that_cannot_say_is_a_mismatch() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(404, text="nope")

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused")

    with (
        httpx.Client(transport=httpx.MockTransport(answer)) as client,
        pytest.raises(RevisionMismatch, match="answered 404 with no routing revision"),
    ):
        served_revision(client, "http://gw")
    with (
        httpx.Client(transport=httpx.MockTransport(refuse)) as client,
        pytest.raises(RevisionMismatch, match="cannot read http://gw/routing"),
    ):
        served_revision(client, "http://gw")

"""One replica key for the launcher and the gateway: the map the local stack writes is the map
the gateway looks replica hosts up in, whatever case or address family the host is written in."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.pool import resolve_address
from routing_config import parse_config
from routing_config.replica_key import replica_address_key, replica_identity
from stack.plan import build_plan


@pytest.mark.parametrize(
    ("url", "key"),
    [
        ("http://model-v2-3-1-a:8000", "model-v2-3-1-a:8000"),
        ("http://model-a", "model-a:80"),
        ("https://model-a", "model-a:443"),
        ("http://Model-A:9000/base", "model-a:9000"),
        ("http://MODEL-A", "model-a:80"),
        ("http://[::1]:8000", "[::1]:8000"),
        ("http://[FE80::1]", "[fe80::1]:80"),
        ("http://user:secret@model-a:8000", "model-a:8000"),
    ],
)
def test_address_key_is_lower_case_host_and_explicit_port(url: str, key: str) -> None:
    assert replica_address_key(url) == key


def test_identity_treats_case_and_default_port_as_the_same_replica() -> None:
    assert replica_identity("http://Model-A:80/") == replica_identity("http://model-a")
    assert replica_identity("http://model-a:8001") != replica_identity("http://model-a:8000")
    assert replica_identity("http://[::1]:8000") != replica_identity("http://[::2]:8000")


ROUTING = """\
service: s
stable: v1
mode: canary
versions:
  v1:
    replicas: [http://Model-Upper:8000, "http://[::1]:8001"]
  v2:
    replicas: [http://lower-case]
canary:
  weights: {v1: 100, v2: 0}
"""


def test_the_gateway_maps_every_replica_the_launcher_started() -> None:
    """Upper-case and IPv6 replica hosts: each URL reaches the port the launcher gave it."""
    config = parse_config(ROUTING).config
    plan = build_plan(
        config,
        python="/venv/bin/python",
        routing_path=Path("/abs/routing.yaml"),
        artifacts=Path("/abs/artifacts"),
        host="127.0.0.1",
        port=8080,
        replica_base_port=9101,
        is_free=lambda host, port: True,
    )
    urls = [url for spec in config.versions.values() for url in spec.replicas]
    resolved = [resolve_address(url, plan.resolve) for url in urls]
    assert resolved == ["http://127.0.0.1:9101", "http://127.0.0.1:9102", "http://127.0.0.1:9103"]


def test_a_hand_written_map_matches_whatever_case_its_keys_use() -> None:
    assert resolve_address("http://model-a:8000", {"Model-A:8000": "127.0.0.1:9"}) == (
        "http://127.0.0.1:9"
    )

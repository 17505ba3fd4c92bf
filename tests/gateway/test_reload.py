"""Live reload: content-hash polling, editor replaces, symlink swaps, invalid files never apply."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from gateway.pool import PoolLimits
from gateway.reload import Reloader
from gateway.state import GatewayState, Snapshot
from routing_config import load_config
from tests.gateway.fakes import RESOLVE, write_routing


def build(loaded, previous=None):  # noqa: ANN001, ANN201 - mirrors Snapshot.build
    return Snapshot.build(loaded, RESOLVE, PoolLimits(), previous)


@pytest.fixture
def routing(tmp_path: Path) -> Path:
    return write_routing(tmp_path / "routing.yaml")


def make(routing: Path) -> tuple[GatewayState, Reloader]:
    state = GatewayState(snapshot=build(load_config(routing)))
    return state, Reloader(routing, state, build)


def test_unchanged_file_is_not_reloaded(routing: Path) -> None:
    state, reloader = make(routing)
    before = state.snapshot
    assert reloader.check() is False
    assert state.snapshot is before


def test_edit_takes_effect_and_keeps_replica_health(routing: Path) -> None:
    state, reloader = make(routing)
    old = state.snapshot
    stable_a = old.pool.by_version["v2.3.1"][0]
    stable_a.consecutive_failures = 2
    write_routing(routing, stable_weight=75, canary_weight=25)
    assert reloader.check() is True
    assert state.snapshot is not old
    assert state.snapshot.loaded.config.weights() == {"v2.3.1": 75, "v2.4.0": 25}
    assert state.snapshot.pool.by_version["v2.3.1"][0] is stable_a
    # The old snapshot is untouched: in-flight requests finish on what they started with.
    assert old.loaded.config.weights() == {"v2.3.1": 90, "v2.4.0": 10}


def test_invalid_edit_never_takes_effect(routing: Path) -> None:
    state, reloader = make(routing)
    old = state.snapshot
    write_routing(routing, stable_weight=90, canary_weight=8)
    assert reloader.check() is False
    assert state.snapshot is old
    assert state.last_reload_error is not None
    assert any("sum to 98, must be 100" in m for m in state.last_reload_error.messages)
    assert state.describe()["last_reload_error"]["messages"] == list(
        state.last_reload_error.messages
    )
    # Fixing the file clears the error and applies.
    write_routing(routing, stable_weight=80, canary_weight=20)
    assert reloader.check() is True
    assert state.last_reload_error is None


def test_editor_style_replace(routing: Path) -> None:
    state, reloader = make(routing)
    replacement = routing.with_suffix(".swp")
    write_routing(replacement, mode="blue_green", live="green")
    os.replace(replacement, routing)  # new inode, as vim and the CLI do
    assert reloader.check() is True
    assert state.snapshot.table.live == "v2.4.0"


def test_configmap_symlink_swap(tmp_path: Path) -> None:
    # Kubernetes mounts ConfigMaps as routing.yaml -> ..data/routing.yaml, ..data -> ..<stamp>/
    first, second = tmp_path / "..2026_a", tmp_path / "..2026_b"
    first.mkdir()
    second.mkdir()
    write_routing(first / "routing.yaml")
    write_routing(second / "routing.yaml", stable_weight=50, canary_weight=50)
    (tmp_path / "..data").symlink_to(first.name)
    (tmp_path / "routing.yaml").symlink_to("..data/routing.yaml")
    state, reloader = make(tmp_path / "routing.yaml")
    tmp_link = tmp_path / "..data_tmp"
    tmp_link.symlink_to(second.name)
    os.replace(tmp_link, tmp_path / "..data")
    assert reloader.check() is True
    assert state.snapshot.loaded.config.weights()["v2.4.0"] == 50


def test_missing_file_keeps_serving(routing: Path) -> None:
    state, reloader = make(routing)
    old = state.snapshot
    routing.unlink()
    assert reloader.check() is False
    assert state.snapshot is old
    assert state.last_reload_error is not None


def test_forced_reload_applies_even_when_unchanged(routing: Path) -> None:
    state, reloader = make(routing)
    old = state.snapshot
    assert reloader.check(force=True) is True
    assert state.snapshot is not old


def test_routing_names_the_file_and_the_hash_of_the_content_in_effect(routing: Path) -> None:
    state, reloader = make(routing)
    source = state.describe()["source"]
    assert source == {
        "kind": "file",
        "location": str(routing),
        "content_hash": hashlib.sha256(routing.read_bytes()).hexdigest(),
    }
    write_routing(routing, stable_weight=90, canary_weight=8)  # invalid: the hash stays
    reloader.check()
    assert state.describe()["source"] == source
    write_routing(routing, stable_weight=70, canary_weight=30)
    assert reloader.check() is True
    assert (
        state.describe()["source"]["content_hash"]
        == hashlib.sha256(  # type: ignore[index]
            routing.read_bytes()
        ).hexdigest()
    )

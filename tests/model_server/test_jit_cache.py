"""Seeding numba's writable cache from a read-only copy, and the no-cache fallback."""

from __future__ import annotations

from pathlib import Path

import numba
import numba.core.caching
import pytest

from model_server.jit_cache import seed_numba_cache
from model_server.settings import ModelSettings
from model_server.treeshap import _cached_njit


def test_seed_copies_what_the_cache_lacks_and_keeps_what_it_has(tmp_path: Path) -> None:
    seed = tmp_path / "seed"
    (seed / "model_server_abc").mkdir(parents=True)
    (seed / "model_server_abc" / "k.nbi").write_bytes(b"baked index")
    (seed / "model_server_abc" / "k.1.nbc").write_bytes(b"baked code")
    cache = tmp_path / "cache"
    (cache / "model_server_abc").mkdir(parents=True)
    # Recompiled here (another CPU): newer than the baked copy, so it must survive.
    (cache / "model_server_abc" / "k.nbi").write_bytes(b"local index")

    assert seed_numba_cache(seed, str(cache)) == 1
    assert (cache / "model_server_abc" / "k.nbi").read_bytes() == b"local index"
    assert (cache / "model_server_abc" / "k.1.nbc").read_bytes() == b"baked code"
    assert sorted(p.name for p in (cache / "model_server_abc").iterdir()) == ["k.1.nbc", "k.nbi"]
    assert seed_numba_cache(seed, str(cache)) == 0


def test_seed_without_a_seed_or_a_cache_dir_copies_nothing(tmp_path: Path) -> None:
    assert seed_numba_cache(tmp_path / "missing", str(tmp_path / "cache")) == 0
    assert not (tmp_path / "cache").exists()
    (tmp_path / "seed").mkdir()
    (tmp_path / "seed" / "k.nbi").write_bytes(b"x")
    assert seed_numba_cache(tmp_path / "seed", "") == 0


def test_kernels_still_compile_when_no_cache_directory_is_writable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # No locator at all: what numba finds when every candidate directory is read-only.
    monkeypatch.setattr(numba.core.caching.CacheImpl, "_locator_classes", [])

    def twice(x: int) -> int:
        return 2 * x

    with pytest.raises(RuntimeError, match="no locator available"):
        numba.njit(cache=True)(twice)
    assert _cached_njit()(twice)(21) == 42


def test_an_empty_seed_setting_turns_seeding_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODEL_NUMBA_CACHE_SEED", "")
    assert ModelSettings().numba_cache_seed is None
    monkeypatch.setenv("MODEL_NUMBA_CACHE_SEED", "/opt/numba-cache")
    assert ModelSettings().numba_cache_seed == Path("/opt/numba-cache")

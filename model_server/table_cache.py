"""The compiled path's tables on disk, so a replica's later starts unpickle nothing.

The first start of an artifact unpickles it (scikit-learn's classes: about 2 s of imports),
builds the TreeSHAP tables and checks them against ``predict_proba`` on the start-up probe. What
the compiled path then needs (the explainer's arrays, the initial log-odds, the probe's verdict)
is plain numbers: written here as one ``.npz`` file and read back with ``allow_pickle=False``.

An entry is filed under the artifact's sha256, and used only after the artifact's bytes have
been hashed to that sha256 (model_server.artifact) and when its key also matches: this format,
the source of the modules that built and checked the tables, and the installed scikit-learn
(whose ``predict_proba`` the probe compared with). Anything else is a miss; an unreadable file
is logged and ignored, and the next start from the artifact replaces it.

The files live beside numba's cache (``NUMBA_CACHE_DIR``, else the ``__pycache__`` of the
kernels, numba's own first choice), so the model image's baked cache and its seeding at start
(model_server.jit_cache) carry them too.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from dataclasses import dataclass
from importlib import metadata as distributions
from pathlib import Path

import numba
import numpy as np

from model_server import treeshap

FORMAT_VERSION = 1
SUBDIRECTORY = "model_tables"
# Whose source decides what the tables hold and whether the compiled path was chosen.
_BUILDERS = ("treeshap.py", "predictor.py", "table_cache.py")

log = logging.getLogger("model_server")


@dataclass(frozen=True)
class CompiledTables:
    """Everything the compiled serving path reads: no model object, nothing to unpickle."""

    arrays: tuple[np.ndarray, ...]  # in treeshap.ARRAY_NAMES order
    n_features: int
    init_raw: float
    serving_reason: str  # the start-up probe's verdict, as /metadata reports it


def numba_cache_dir() -> str:
    """numba's cache directory as numba read it from NUMBA_CACHE_DIR; "" when it is unset."""
    # numba's config module sets its settings as globals when it reads the environment, so
    # no annotation declares them.
    directory: str = numba.config.CACHE_DIR  # type: ignore[attr-defined]
    return directory


def default_directory() -> Path:
    """Where numba caches the kernels: NUMBA_CACHE_DIR, else their source's __pycache__."""
    root = numba_cache_dir() or str(Path(treeshap.__file__).parent / "__pycache__")
    return Path(root) / SUBDIRECTORY


def cache_key(sha256: str) -> str:
    digest = hashlib.sha256(f"format {FORMAT_VERSION}\nartifact {sha256}\n".encode())
    package = Path(treeshap.__file__).parent
    for name in _BUILDERS:
        digest.update(name.encode() + b"\n" + (package / name).read_bytes())
    digest.update(f"scikit-learn {distributions.version('scikit-learn')}".encode())
    return digest.hexdigest()


def entry_path(directory: Path, sha256: str) -> Path:
    return directory / f"{sha256}.npz"


def read(directory: Path, sha256: str) -> CompiledTables | None:
    """The tables cached for the artifact with this (verified) sha256, or None."""
    path = entry_path(directory, sha256)
    if not path.is_file():
        return None
    try:
        # Opened here, not by np.load: it leaves a file it failed to parse open.
        with path.open("rb") as file:
            entry = np.load(file, allow_pickle=False)
            if not isinstance(entry, np.lib.npyio.NpzFile):
                raise ValueError("not an .npz archive")
            with entry:
                if str(entry["key"]) != cache_key(sha256):
                    log.info("model tables in %s are stale: rebuilding them", path)
                    return None
                arrays = tuple(np.array(entry[name]) for name in treeshap.ARRAY_NAMES)
                return CompiledTables(
                    arrays=arrays,
                    n_features=int(entry["n_features"]),
                    init_raw=float(entry["init_raw"]),
                    serving_reason=str(entry["serving_reason"]),
                )
    except Exception as exc:  # a truncated or foreign file: any of zipfile's, numpy's errors
        log.warning("model tables in %s are unreadable, ignored: %s", path, exc)
        return None


def write(directory: Path, sha256: str, tables: CompiledTables) -> Path | None:
    """Cache the tables (atomically: a reader never sees half a file); None if it cannot."""
    path = entry_path(directory, sha256)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, partial = tempfile.mkstemp(dir=directory, prefix=".tables-")
        try:
            # mkstemp's 0600 would lock out the model image's runtime user: its baked cache is
            # written by root at build time and read (seeded) by uid 10001 at start.
            os.fchmod(fd, 0o644)
            with os.fdopen(fd, "wb") as out:
                np.savez(
                    out,
                    # numpy's default, spelt out: no array name can then stand for it.
                    allow_pickle=True,
                    key=np.array(cache_key(sha256)),
                    n_features=np.array(tables.n_features),
                    init_raw=np.array(tables.init_raw, dtype=np.float64),
                    serving_reason=np.array(tables.serving_reason),
                    **dict(zip(treeshap.ARRAY_NAMES, tables.arrays, strict=True)),
                )
            os.replace(partial, path)
        except BaseException:
            Path(partial).unlink(missing_ok=True)
            raise
    except OSError as exc:
        log.warning("model tables not cached in %s: %s", directory, exc)
        return None
    return path

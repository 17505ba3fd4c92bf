"""The TreeSHAP kernels' on-disk numba cache: fill it ahead of time, and seed it from a copy.

    python -m model_server.jit_cache --version v2.3.1 --path artifacts/v2.3.1/model.joblib

compiles the kernels for that artifact into numba's cache directory (``NUMBA_CACHE_DIR``) and
writes its SHAP tables beside them (model_server.table_cache), as a replica's first start would;
the model image runs it at build time.

numba loads cached code only from a directory it can write: before using one it creates a
temporary file there, and a directory that refuses is skipped. A cache baked into an image with a
read-only root filesystem therefore cannot be used where it lies, so at start a replica copies
the files its writable cache lacks from the baked one (``MODEL_NUMBA_CACHE_SEED``; a few hundred
KB, milliseconds) before the kernels are first called.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

from model_server import table_cache, treeshap
from model_server.artifact import ArtifactError
from model_server.loader import load_predictor

log = logging.getLogger("model_server")


def seed_numba_cache(seed: Path, cache_dir: str | None = None) -> int:
    """Copy the files of ``seed`` that numba's cache directory lacks; return how many.

    Files already there are kept: they may hold code numba recompiled here for another CPU.
    """
    target = cache_dir if cache_dir is not None else table_cache.numba_cache_dir()
    if not target:
        log.warning("NUMBA_CACHE_DIR is not set: the numba cache in %s is not used", seed)
        return 0
    if not seed.is_dir():
        log.warning("numba cache seed %s is not a directory: kernels compile at start", seed)
        return 0
    copied = 0
    for source in sorted(seed.rglob("*")):
        if not source.is_file():
            continue
        destination = Path(target) / source.relative_to(seed)
        if destination.exists():
            continue
        destination.parent.mkdir(parents=True, exist_ok=True)
        # Temp file + rename: numba never sees half a file, even if the copy is interrupted.
        fd, partial = tempfile.mkstemp(dir=destination.parent, prefix=".seed-")
        with os.fdopen(fd, "wb") as out, source.open("rb") as src:
            shutil.copyfileobj(src, out)
        os.replace(partial, destination)
        copied += 1
    log.info("numba cache: %d file(s) copied from %s to %s", copied, seed, target)
    return copied


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m model_server.jit_cache",
        description="Compile the TreeSHAP kernels for an artifact into numba's cache directory.",
    )
    parser.add_argument("--version", required=True, help="the version the artifact must be")
    parser.add_argument("--path", type=Path, required=True, help="the artifact's model.joblib")
    args = parser.parse_args(argv)
    try:
        # From the artifact, whatever is cached: every kernel compiled, the tables up to date.
        predictor, _ = load_predictor(args.path, args.version, rebuild=True)
    except ArtifactError as exc:
        parser.exit(1, f"cannot warm the numba cache: {exc}\n")
    if predictor.fast_explainer is None:
        print(f"{args.version}: not a compiled-explainer model, nothing to cache")
        return 0
    # The directory numba chose: it is named after the source's directory, which must be the
    # one the server will import (a cache filed under another copy of the package is never hit).
    print(
        f"{args.version}: TreeSHAP kernels of {treeshap.__file__} cached in "
        f"{treeshap._shap_serial.stats.cache_path}, its tables in {table_cache.default_directory()}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

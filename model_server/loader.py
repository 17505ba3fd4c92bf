"""A replica's predictor: from the cached tables when they match the artifact, else unpickled.

Either way the artifact's bytes are hashed first and must match its metadata's sha256. A start
whose tables are cached (model_server.table_cache) then serves from them: nothing is unpickled
and scikit-learn is never imported. Otherwise (the artifact's first start, a new version of the
code, a corrupt entry) the artifact is unpickled as before, the predictor built and checked from
the model, and, on the compiled path, its tables cached for the next start. A model the compiled
path does not support is never cached: every start serves it with scikit-learn and says so.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from model_server import table_cache
from model_server.artifact import read_verified, unpickle
from model_server.predictor import Predictor

log = logging.getLogger("model_server")


def load_predictor(
    model_path: Path, version: str, cache_dir: Path | None = None, *, rebuild: bool = False
) -> tuple[Predictor, dict[str, Any]]:
    """The predictor and the metadata /metadata serves (the artifact's and the serving path).

    ``rebuild`` ignores cached tables: the predictor is built from the artifact (compiling every
    kernel, the one that builds the tables included) and its tables written afresh.
    """
    directory = cache_dir if cache_dir is not None else table_cache.default_directory()
    metadata, data = read_verified(model_path, version)
    sha256 = metadata["sha256"]
    tables = None if rebuild else table_cache.read(directory, sha256)
    if tables is not None:
        predictor = Predictor.from_tables(tables, version)
    else:
        predictor = Predictor(unpickle(data), version)
        built = predictor.compiled_tables()
        if built is not None and table_cache.write(directory, sha256, built) is not None:
            log.info("model %s: tables cached in %s", version, directory)
    return predictor, {**metadata, **predictor.serving_path.as_metadata()}

"""Verify, then load, a model artifact.

joblib is pickle: unpickling runs code. So an artifact is loaded only after its bytes hash to the
sha256 its metadata.json records and that metadata names the version this replica is pinned to.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

METADATA_FILE = "metadata.json"


class ArtifactError(Exception):
    """The artifact cannot be served; the message is the one-line reason."""


@dataclass(frozen=True)
class Artifact:
    model: Any
    metadata: dict[str, Any]


def read_metadata(model_path: Path, expected_version: str) -> dict[str, Any]:
    """Read metadata.json beside the model and check it names the expected version."""
    meta_path = model_path.parent / METADATA_FILE
    if not model_path.is_file():
        raise ArtifactError(f"model file not found: {model_path}")
    try:
        metadata: dict[str, Any] = json.loads(meta_path.read_text())
    except FileNotFoundError:
        raise ArtifactError(f"metadata not found: {meta_path}") from None
    except json.JSONDecodeError as exc:
        raise ArtifactError(f"metadata is not valid JSON: {meta_path}: {exc}") from None
    if metadata.get("version") != expected_version:
        raise ArtifactError(
            f"version mismatch: MODEL_VERSION is {expected_version} but {meta_path} "
            f"describes {metadata.get('version')}"
        )
    if not isinstance(metadata.get("sha256"), str):
        raise ArtifactError(f"metadata has no sha256: {meta_path}")
    return metadata


def verify_bytes(data: bytes, metadata: dict[str, Any], model_path: Path) -> None:
    actual = hashlib.sha256(data).hexdigest()
    if actual != metadata["sha256"]:
        raise ArtifactError(
            f"checksum mismatch: {model_path} has sha256 {actual[:12]}..., metadata says "
            f"{metadata['sha256'][:12]}...; refusing to unpickle"
        )


def verify_artifact(model_path: Path, expected_version: str) -> dict[str, Any]:
    """Fail fast (before the server starts) on a wrong version or a tampered file."""
    metadata, _ = read_verified(model_path, expected_version)
    return metadata


def read_verified(model_path: Path, expected_version: str) -> tuple[dict[str, Any], bytes]:
    """The metadata and the artifact's bytes, which hash to the sha256 it records."""
    metadata = read_metadata(model_path, expected_version)
    data = model_path.read_bytes()
    verify_bytes(data, metadata, model_path)
    return metadata, data


def unpickle(data: bytes) -> Any:
    """Only for bytes ``read_verified`` returned."""
    # Imported here: joblib (and the scikit-learn classes the pickle names) cost a start that
    # serves from the cached tables (model_server.table_cache) about 2 s of imports.
    import joblib

    return joblib.load(io.BytesIO(data))


def load_artifact(model_path: Path, expected_version: str) -> Artifact:
    """Hash and unpickle the same bytes, so the file cannot change between check and load."""
    metadata, data = read_verified(model_path, expected_version)
    return Artifact(model=unpickle(data), metadata=metadata)

"""A replica's Open Inference Protocol model metadata (``GET /v2/models/{name}``), as kept.

The health loop asks every replica for it each round (never a request's path) and keeps what it
read on the replica: the V2 endpoints answer the model's metadata from it, the version check of a
``protocol: v2`` replica reads its ``versions``, and the input contract compares its ``inputs``.

A replica's answer is bounded before anything of it is kept: a server answering thousands of
tensors or megabyte names does not grow the gateway's memory round after round.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

MAX_TENSORS = 256  # inputs or outputs one model may declare
MAX_NAME = 256  # characters of a name, a version, a platform or a datatype
MAX_DIMS = 16
MAX_VERSIONS = 256


class MetadataError(ValueError):
    """The answer is not a V2 model metadata document; str() says which key."""


@dataclass(frozen=True, slots=True)
class TensorSpec:
    name: str
    datatype: str
    shape: tuple[int, ...]

    def as_dict(self) -> dict[str, object]:
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}


@dataclass(frozen=True, slots=True)
class ModelMetadata:
    name: str
    versions: tuple[str, ...]
    platform: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    def input_types(self) -> dict[str, str]:
        """The input contract: each input's name and datatype (shapes may differ: [-1] or
        [-1, 1] are the same column to a pandas codec)."""
        return {spec.name: spec.datatype for spec in self.inputs}


def parse_metadata(document: Any) -> ModelMetadata:
    """Read a parsed ``GET /v2/models/{name}`` answer; MetadataError names what is wrong."""
    if not isinstance(document, dict):
        raise MetadataError("not a JSON object")
    versions = document.get("versions", [])
    if not isinstance(versions, list) or len(versions) > MAX_VERSIONS:
        raise MetadataError(f"versions: not a list of at most {MAX_VERSIONS} strings")
    return ModelMetadata(
        name=_string(document.get("name"), "name"),
        versions=tuple(_string(v, "versions") for v in versions),
        platform=_string(document.get("platform", ""), "platform", empty=True),
        inputs=_tensors(document.get("inputs", []), "inputs"),
        outputs=_tensors(document.get("outputs", []), "outputs"),
    )


def _string(value: Any, key: str, *, empty: bool = False) -> str:
    if not isinstance(value, str) or len(value) > MAX_NAME or (not value and not empty):
        raise MetadataError(f"{key}: not a string of 1 to {MAX_NAME} characters")
    return value


def _tensors(value: Any, key: str) -> tuple[TensorSpec, ...]:
    if not isinstance(value, list) or len(value) > MAX_TENSORS:
        raise MetadataError(f"{key}: not a list of at most {MAX_TENSORS} tensors")
    specs = []
    for i, item in enumerate(value):
        where = f"{key}[{i}]"
        if not isinstance(item, dict):
            raise MetadataError(f"{where}: not an object")
        shape = item.get("shape", [])
        if (
            not isinstance(shape, list)
            or len(shape) > MAX_DIMS
            or not all(type(d) is int for d in shape)
        ):
            raise MetadataError(f"{where}.shape: not a list of at most {MAX_DIMS} integers")
        specs.append(
            TensorSpec(
                name=_string(item.get("name"), f"{where}.name"),
                datatype=_string(item.get("datatype"), f"{where}.datatype"),
                shape=tuple(shape),
            )
        )
    return tuple(specs)

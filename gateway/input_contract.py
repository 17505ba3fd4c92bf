"""One input contract per model: every version takes the inputs the stable version takes.

A client of ``/v2/models/{model}/infer`` does not choose the version that serves it (weights,
sticky keys, fallback do), so a request valid for one version must be valid for every other:
the inputs (name and datatype) in each replica's V2 metadata must equal the stable version's.
A replica whose inputs differ counts as not healthy, with the difference as its reason: its
version gets no traffic (routing falls back to stable, a pin gets a 503 naming the reason) and
``/routing``, the status page and ``streamflow status`` show why.

The reference is the stable version's inputs, read from the first of its replicas (in
routing.yaml's order) whose metadata is known; it is remembered, so a stable version briefly
down does not open the door to a version that differs. A replica whose metadata is unknown (a
model server without the V2 door) is not judged: it cannot be shown to differ.

Pure: the health loop (gateway/health.py) hands the metadata in and records the verdicts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from gateway.model_metadata import ModelMetadata

MAX_LISTED = 4  # differences named in a reason; the rest are counted


@dataclass(frozen=True, slots=True)
class Contract:
    """The stable version's inputs: name -> datatype."""

    version: str
    inputs: Mapping[str, str]

    def as_dict(self) -> dict[str, object]:
        return {
            "version": self.version,
            "inputs": [{"name": n, "datatype": t} for n, t in self.inputs.items()],
        }


def reference_of(
    stable: str,
    candidates: Iterable[tuple[str, ModelMetadata | None]],
    previous: Contract | None,
) -> Contract | None:
    """The contract this round: the first stable replica's known inputs, else the last one
    known for the same stable version (None when it was never known)."""
    for version, metadata in candidates:
        if version == stable and metadata is not None:
            return Contract(stable, metadata.input_types())
    return previous if previous is not None and previous.version == stable else None


def difference(reference: Contract, inputs: Mapping[str, str]) -> str | None:
    """How ``inputs`` differ from the contract, or None when they are the same; the reason a
    replica is not routed to, e.g. ``input contract differs from v2.3.1: tenure is FP64, not
    INT64; senior_citizen missing``."""
    expected = reference.inputs
    found: list[str] = []
    for name, datatype in expected.items():
        if name not in inputs:
            found.append(f"{name} missing")
        elif inputs[name] != datatype:
            found.append(f"{name} is {inputs[name]}, not {datatype}")
    found.extend(
        f"{name} not an input of {reference.version}" for name in inputs if name not in expected
    )
    if not found:
        return None
    listed = "; ".join(found[:MAX_LISTED])
    more = f"; and {len(found) - MAX_LISTED} more" if len(found) > MAX_LISTED else ""
    return f"input contract differs from {reference.version}: {listed}{more}"

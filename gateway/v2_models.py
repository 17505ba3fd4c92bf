"""What the gateway says of its model on the Open Inference Protocol: names, metadata, readiness.

The gateway fronts one model (routing.yaml's ``model``, ``churn`` by default) whose versions are
routing.yaml's. Its metadata is the replicas' (read by the health loop, gateway/health.py): the
model's platform, inputs and outputs are the stable version's (every version takes the same
inputs: gateway/input_contract.py), a version's are its own replicas'. Nothing here does I/O or
knows FastAPI: the endpoints (gateway/endpoints/v2.py) and the infer door call it with the
snapshot in hand.
"""

from __future__ import annotations

from collections.abc import Iterable
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version

from gateway.model_metadata import ModelMetadata
from gateway.pool import Replica, ReplicaPool, ReplicaState
from routing_config import RoutingConfig

SERVER_NAME = "streamflow-gateway"
# Triton's binary tensor data extension: passed through to the replicas that take it,
# translated to JSON and back for the ones that do not.
EXTENSIONS = ("binary_tensor_data",)
# The model contract's outputs a V2-only version's answers are put in (gateway/lanes.py); it
# gives no reasons, so no top_reasons.
SERVED_CONTRACT_OUTPUTS: tuple[dict[str, object], ...] = (
    {"name": "churn_probability", "datatype": "FP64", "shape": [-1]},
    {"name": "risk_tier", "datatype": "BYTES", "shape": [-1]},
)
MAX_ECHO = 64  # characters of a client's model or version name repeated in an error


class V2Error(Exception):
    """An answer the protocol's error object carries: ``{"error": str(exc)}``."""

    status = 400


class UnknownModel(V2Error):
    status = 404


class NotReady(V2Error):
    status = 503


def server_metadata() -> dict[str, object]:
    try:
        version = package_version(SERVER_NAME)
    except PackageNotFoundError:  # run from a source tree that was never installed
        version = "unknown"
    return {"name": SERVER_NAME, "version": version, "extensions": list(EXTENSIONS)}


def echo(name: str) -> str:
    """A client's name, quoted and cut short: an error never repeats a long path back."""
    return repr(name if len(name) <= MAX_ECHO else name[:MAX_ECHO] + "...")


def check_model(config: RoutingConfig, model: str, version: str | None = None) -> None:
    """UnknownModel (404) when the gateway does not serve ``model``, or ``version`` of it."""
    if model != config.model:
        raise UnknownModel(f"unknown model {echo(model)}; this gateway serves {config.model!r}")
    if version is not None and version not in config.versions:
        known = ", ".join(config.versions)
        raise UnknownModel(
            f"unknown version {echo(version)} of model {config.model!r}; known versions: {known}"
        )


def model_metadata(
    config: RoutingConfig, pool: ReplicaPool, model: str, version: str | None = None
) -> dict[str, object]:
    """``GET /v2/models/{model}[/versions/{version}]``: the name, the versions (routing.yaml's,
    or the one asked for), and the platform, inputs and outputs the replicas state."""
    check_model(config, model, version)
    if version is None:
        # Stable first: its inputs are the contract; another version's replica only when no
        # stable replica has answered yet, and never one that breaks the contract.
        order = [config.stable, *(v for v in config.versions if v != config.stable)]
        found = _first_metadata(r for v in order for r in pool.by_version.get(v, ()))
        versions = list(config.versions)
    else:
        found = _first_metadata(pool.by_version.get(version, ()))
        versions = [version]
    if found is None:
        which = f"version {version}" if version is not None else "any version"
        raise NotReady(
            f"metadata of model {config.model!r} not known yet: no replica of {which} has "
            "answered its V2 metadata"
        )
    outputs = [spec.as_dict() for spec in found.outputs]
    if version is not None and config.versions[version].protocol == "v2":
        # Through the gateway such a version answers the contract's outputs as well as its own
        # (gateway/lanes.py): a client reading this must see both.
        own = {output["name"] for output in outputs}
        outputs = [o for o in SERVED_CONTRACT_OUTPUTS if o["name"] not in own] + outputs
    return {
        "name": config.model,
        "versions": versions,
        "platform": found.platform,
        "inputs": [spec.as_dict() for spec in found.inputs],
        "outputs": outputs,
    }


def _first_metadata(replicas: Iterable[Replica]) -> ModelMetadata | None:
    """A healthy replica's metadata, else any replica's that keeps the contract."""
    candidates = [r for r in replicas if r.metadata is not None]
    for replica in candidates:
        if replica.state is ReplicaState.HEALTHY:
            return replica.metadata
    for replica in candidates:
        if replica.state is not ReplicaState.CONTRACT_MISMATCH:
            return replica.metadata
    return None


def check_version_ready(config: RoutingConfig, pool: ReplicaPool, version: str) -> None:
    """NotReady (503) with the reasons when no replica of ``version`` can take a request."""
    if pool.has_healthy(version):
        return
    reasons = pool.unavailable(version)
    counted = ", ".join(f"{n} {reason}" for reason, n in reasons.items()) or "no replicas"
    contract = pool.contract_reason(version)
    why = f": {contract}" if contract else ""
    raise NotReady(f"version {version} of model {config.model!r} is not ready: {counted}{why}")

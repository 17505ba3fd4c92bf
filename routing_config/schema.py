"""routing.yaml's schema: frozen models, ``extra="forbid"``, parsed once and swapped whole.

Field types check single values (routing_config/types.py); what relates one key to another
(a weight naming a version that exists, weights summing to 100) is in routing_config/checks.py,
reported all at once, each problem with its own key path.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    Field,
    StrictFloat,
    StrictInt,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from routing_config.checks import cross_field_problems
from routing_config.rollout_plan import RolloutSpec
from routing_config.types import Frozen, HeaderName, ReplicaUrl

__all__ = [
    "BlueGreenSpec",
    "CanarySpec",
    "PinningSpec",
    "RoutingConfig",
    "ScoreSpec",
    "ShadowSpec",
    "VersionSpec",
]


class ScoreSpec(Frozen):
    """Where an Open Inference Protocol answer holds the churn probability: an output tensor,
    and for a two-dimensional one (scikit-learn's ``predict_proba``) the column."""

    output: Annotated[str, Field(min_length=1)] = "churn_probability"
    column: Annotated[StrictInt, Field(ge=0)] | None = None


class VersionSpec(Frozen):
    replicas: tuple[ReplicaUrl, ...]
    # What the replicas speak. ``model_api``: StreamFlow model servers (the model API and the
    # Open Inference Protocol, binary tensors included). ``v2``: any Open Inference Protocol
    # server (MLServer, Triton, KServe), reached on /v2 only.
    protocol: Literal["model_api", "v2"] = "model_api"
    # The model's name on the replicas' /v2/models/{name} (default: the file's ``model``).
    model_name: (
        Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")] | None
    ) = None
    # protocol v2 only: where its answers carry the score, and whether the server takes Triton's
    # binary tensor extension (MLServer does not; Triton does).
    score: ScoreSpec | None = None
    binary_tensors: bool | None = None

    @field_validator("replicas")
    @classmethod
    def _not_empty(cls, replicas: tuple[str, ...]) -> tuple[str, ...]:
        if not replicas:
            raise ValueError("a version needs at least one replica")
        return replicas


class CanarySpec(Frozen):
    # Strict: YAML `true` or `"5"` as a weight is a typo, not a number.
    weights: dict[str, StrictInt]
    sticky_header: HeaderName | None = None


class BlueGreenSpec(Frozen):
    blue: str
    green: str
    live: Literal["blue", "green"]


class ShadowSpec(Frozen):
    version: str
    percent: Annotated[StrictInt | StrictFloat, Field(ge=0, le=100)]


class PinningSpec(Frozen):
    header: HeaderName
    allow: tuple[str, ...]


class RoutingConfig(Frozen):
    service: Annotated[str, Field(min_length=1)]
    # The model the gateway fronts on the Open Inference Protocol: /v2/models/{model}/...
    model: Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")] = "churn"
    stable: str
    mode: Literal["canary", "blue_green"]
    versions: dict[str, VersionSpec]
    canary: CanarySpec | None = None
    blue_green: BlueGreenSpec | None = None
    shadow: ShadowSpec | None = None
    pinning: PinningSpec | None = None
    rollout: RolloutSpec | None = None

    @field_validator("versions")
    @classmethod
    def _check_versions(cls, versions: dict[str, VersionSpec]) -> dict[str, VersionSpec]:
        if not versions:
            raise ValueError("at least one version is required")
        return versions

    @model_validator(mode="after")
    def _check_references(self) -> RoutingConfig:
        # Collect every cross-field problem with its own key path, then raise them together so
        # one save shows the operator everything that is wrong, each with its line.
        problems = cross_field_problems(self)
        if problems:
            raise ValidationError.from_exception_data(
                type(self).__name__,
                [
                    InitErrorDetails(
                        type=PydanticCustomError("routing", "{reason}", {"reason": msg}),
                        loc=loc,
                        input=None,
                    )
                    for loc, msg in problems
                ],
            )
        return self

    def weights(self) -> dict[str, int]:
        """Effective percent of new traffic per version under the active mode; every version
        is listed (unlisted canary versions get 0; blue/green gives the live version 100)."""
        if self.mode == "blue_green":
            live = self.live_version()
            return {name: 100 if name == live else 0 for name in self.versions}
        weights = self.canary.weights if self.canary else {}
        return {name: weights.get(name, 0) for name in self.versions}

    def live_version(self) -> str | None:
        """The version behind the live colour, or None without a blue_green section."""
        if self.blue_green is None:
            return None
        bg = self.blue_green
        return bg.blue if bg.live == "blue" else bg.green

"""routing.yaml as a library: its schema, loading with line numbers, and comment-keeping edits.

Used alike by the gateway (which reads it), the rollout controller and the CLI (which also
write it). Importing the package gives the schema and the loader; the editor
(``routing_config.document``, ``routing_config.weights``) is imported by those that write.
"""

from routing_config.errors import ConfigError, ConfigIssue, RoutingEditError
from routing_config.load import LoadedConfig, load_config, parse_config
from routing_config.rollout_plan import (
    RolloutHorizon,
    RolloutQuality,
    RolloutSpec,
    RolloutThresholds,
    ShadowBakeSpec,
)
from routing_config.schema import (
    BlueGreenSpec,
    CanarySpec,
    PinningSpec,
    RoutingConfig,
    ShadowSpec,
    VersionSpec,
)

__all__ = [
    "BlueGreenSpec",
    "CanarySpec",
    "ConfigError",
    "ConfigIssue",
    "LoadedConfig",
    "PinningSpec",
    "RolloutHorizon",
    "RolloutQuality",
    "RolloutSpec",
    "RolloutThresholds",
    "RoutingConfig",
    "RoutingEditError",
    "ShadowBakeSpec",
    "ShadowSpec",
    "VersionSpec",
    "load_config",
    "parse_config",
]

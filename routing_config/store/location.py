"""Where routing is kept, as the operator writes it: a path, or ``configmap:NAMESPACE/NAME``.

The same string is ``GATEWAY_ROUTING_FILE`` (the gateway's setting and the CLI's default) and
the CLI's ``--file``, so one variable names the document for every process in a pod.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from routing_config.errors import ConfigError, ConfigIssue

__all__ = ["CONFIGMAP_KEY", "CONFIGMAP_PREFIX", "ConfigMapRef", "configmap_ref"]

CONFIGMAP_PREFIX = "configmap:"
# The key of the ConfigMap's data that holds the document, as text (comments kept).
CONFIGMAP_KEY = "routing.yaml"

# A Kubernetes object name (DNS-1123 subdomain) and a namespace (DNS-1123 label).
_NAME = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")
_NAMESPACE = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")


@dataclass(frozen=True, slots=True)
class ConfigMapRef:
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def location(self) -> str:
        return f"{CONFIGMAP_PREFIX}{self}"


def configmap_ref(location: str) -> ConfigMapRef | None:
    """The ConfigMap a location names, None for a path; ``ConfigError`` for a malformed one."""
    if not location.startswith(CONFIGMAP_PREFIX):
        return None
    namespace, slash, name = location[len(CONFIGMAP_PREFIX) :].partition("/")
    if not slash or not _NAMESPACE.fullmatch(namespace) or not _NAME.fullmatch(name):
        problem = (
            f"a ConfigMap location is {CONFIGMAP_PREFIX}NAMESPACE/NAME in lower-case Kubernetes "
            f"names (e.g. {CONFIGMAP_PREFIX}streamflow/streamflow-routing)"
        )
        raise ConfigError([ConfigIssue(location, problem)])
    return ConfigMapRef(namespace, name)

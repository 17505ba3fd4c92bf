"""Where routing is kept: one interface (``base.RoutingStore``), a file or a ConfigMap behind it.

``open_store(location)`` picks by the location's form: ``configmap:NAMESPACE/NAME`` is the
ConfigMap's ``data["routing.yaml"]`` through the Kubernetes API (``configmap.py``,
``kube_api.py``); anything else a path (``file.py``). ``load_routing(location)`` is the
validated document, as every reader at startup wants it. The gateway follows a ConfigMap with
``configmap_watch.py``.
"""

from __future__ import annotations

from routing_config.load import LoadedConfig
from routing_config.store.base import Edit, RoutingStore, Stored
from routing_config.store.configmap import ConfigMapStore
from routing_config.store.file import FileStore
from routing_config.store.location import CONFIGMAP_PREFIX, ConfigMapRef, configmap_ref

__all__ = [
    "CONFIGMAP_PREFIX",
    "ConfigMapRef",
    "ConfigMapStore",
    "Edit",
    "FileStore",
    "RoutingStore",
    "Stored",
    "configmap_ref",
    "load_routing",
    "open_store",
]


def open_store(location: str) -> RoutingStore:
    """The store a location names (``ConfigError`` for a malformed ConfigMap location)."""
    ref = configmap_ref(location)
    return ConfigMapStore(ref) if ref is not None else FileStore(location)


def load_routing(location: str) -> LoadedConfig:
    """The routing document at ``location``, validated; ``ConfigError`` when unreadable or
    invalid, naming the location."""
    return open_store(location).load()

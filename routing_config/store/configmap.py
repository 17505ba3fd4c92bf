"""routing.yaml in a Kubernetes ConfigMap, read and written through the API server.

The document is the ConfigMap's ``data["routing.yaml"]``, kept as text, so an edit keeps the
operator's comments exactly as a file edit does. A write is a JSON merge patch that carries the
resourceVersion the edit was made on: the API server applies it only if the ConfigMap is still
at that version and answers 409 Conflict otherwise. On a conflict the store reads the ConfigMap
again and applies the same edit function to what it now holds (so two writers changing
different keys both land, and neither overwrites the other), up to ``MAX_ATTEMPTS`` times.

Only ``get`` and ``patch`` of this one ConfigMap are needed (the Role can name it).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

import httpx

from routing_config.document import parse_document, validate_edit
from routing_config.errors import ConfigError, ConfigIssue, RoutingEditError
from routing_config.load import LoadedConfig, parse_config
from routing_config.store.base import Edit, Stored
from routing_config.store.kube_api import KubeConnection, KubeUnavailable, status_message
from routing_config.store.location import CONFIGMAP_KEY, ConfigMapRef

__all__ = ["MAX_ATTEMPTS", "ConfigMapStore", "configmap_path", "document_of"]

MAX_ATTEMPTS = 8
RETRY_PAUSE_S = 0.05  # times the attempt, with jitter, so racing writers fall out of step


def configmap_path(ref: ConfigMapRef) -> str:
    return f"/api/v1/namespaces/{ref.namespace}/configmaps/{ref.name}"


def document_of(obj: Any, ref: ConfigMapRef) -> Stored:
    """The routing document and resourceVersion of a ConfigMap object as the API returns it."""
    if not isinstance(obj, dict):
        raise ConfigError([ConfigIssue(ref.location, "the API returned no ConfigMap object")])
    metadata = obj.get("metadata") or {}
    version = str(metadata.get("resourceVersion", ""))
    data = obj.get("data") or {}
    text = data.get(CONFIGMAP_KEY) if isinstance(data, dict) else None
    if not isinstance(text, str):
        raise ConfigError(
            [ConfigIssue(ref.location, f"has no data key {CONFIGMAP_KEY!r} (the routing document)")]
        )
    return Stored(text, version)


class ConfigMapStore:
    def __init__(
        self,
        ref: ConfigMapRef,
        connection: Callable[[], KubeConnection] = KubeConnection.from_env,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.ref = ref
        self._connection = connection
        self._transport = transport
        self._sleep = sleep

    @property
    def location(self) -> str:
        return self.ref.location

    def read(self) -> Stored:
        try:
            with self._client() as client:
                return self._get(client)
        except RoutingEditError as exc:
            raise ConfigError([ConfigIssue(self.location, " ".join(exc.lines))]) from None

    def load(self) -> LoadedConfig:
        stored = self.read()
        try:
            return parse_config(stored.text)
        except ConfigError as exc:
            raise ConfigError(exc.issues, self.location) from None

    def edit(self, change: Edit) -> LoadedConfig | None:
        with self._client() as client:
            for attempt in range(1, MAX_ATTEMPTS + 1):
                try:
                    stored = self._get(client)
                except ConfigError as exc:
                    raise RoutingEditError(f"error: {exc.messages[0]}") from None
                doc = parse_document(stored.text, self.location)
                said = change(doc)
                if said is None:
                    return None
                text = doc.render()
                loaded = validate_edit(text, self.location, said)
                if self._patch(client, text, stored.version):
                    return loaded
                self._sleep(RETRY_PAUSE_S * attempt * random.uniform(0.5, 1.5))
        raise RoutingEditError(
            f"error: not written; {self.location} changed under each of {MAX_ATTEMPTS} attempts "
            "(409 Conflict every time); try again"
        )

    def _client(self) -> httpx.Client:
        try:
            return self._connection().client(self._transport)
        except KubeUnavailable as exc:
            raise RoutingEditError(f"error: {self.location}: {exc}") from None

    def _get(self, client: httpx.Client) -> Stored:
        try:
            response = client.get(configmap_path(self.ref))
        except httpx.HTTPError as exc:
            problem = f"cannot read: Kubernetes API unreachable ({type(exc).__name__}: {exc})"
            raise ConfigError([ConfigIssue(self.location, problem)]) from None
        if response.status_code != 200:
            problem = f"cannot read: {status_message(response)}"
            raise ConfigError([ConfigIssue(self.location, problem)])
        return document_of(response.json(), self.ref)

    def _patch(self, client: httpx.Client, text: str, version: str) -> bool:
        """Write ``text`` if the ConfigMap is still at ``version``: False on 409 Conflict."""
        body = {"metadata": {"resourceVersion": version}, "data": {CONFIGMAP_KEY: text}}
        try:
            response = client.patch(
                configmap_path(self.ref),
                json=body,
                headers={"Content-Type": "application/merge-patch+json"},
            )
        except httpx.HTTPError as exc:
            # The patch may or may not have been applied; re-reading tells, so say so plainly.
            raise RoutingEditError(
                f"error: {self.location}: the write's answer was lost ({type(exc).__name__}); "
                "check with `streamflow validate` before trying again"
            ) from None
        if response.status_code == 409:
            return False
        if response.status_code != 200:
            raise RoutingEditError(
                f"error: not written; {self.location}: {status_message(response)}"
            )
        return True

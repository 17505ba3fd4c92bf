"""Following a ConfigMap as Kubernetes controllers do (client-go's informer, for one object).

List it (the list's resourceVersion is the API server's now), then watch from that version:
the server streams each change as a JSON line (ADDED, MODIFIED, DELETED), BOOKMARKs that only
move the version on, and ERRORs. A watch that ends (the server's ``timeoutSeconds``, a dropped
connection) is opened again from the last version seen, so nothing is missed and nothing is
read twice; when that version is too old for the server (410 Gone, as an HTTP status or as an
ERROR event) the object is listed afresh. Errors back off exponentially with jitter, so a fleet
of gateways does not hammer a recovering API server in step. Each document seen is handed to
the caller, which validates it before anything uses it.

Calls: ``list`` and ``watch`` of configmaps with ``fieldSelector=metadata.name=NAME`` (which a
Role restricted to the one ConfigMap by resourceNames allows).
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx

from routing_config.errors import ConfigError
from routing_config.store.configmap import document_of
from routing_config.store.kube_api import KubeConnection, status_message
from routing_config.store.location import ConfigMapRef

__all__ = ["ConfigMapWatch", "Seen"]

log = logging.getLogger("routing_config.configmap_watch")

WATCH_TIMEOUT_S = 300  # the server ends each watch after this; it is opened again at once
# With no line at all for this long (not even a bookmark) the connection is presumed dead.
IDLE_READ_S = 120.0


@dataclass(frozen=True, slots=True)
class Seen:
    """A version of the ConfigMap: its document, or why it has none (deleted, key missing)."""

    version: str
    text: str | None
    problem: str | None = None


class WatchExpired(Exception):
    """410 Gone: the version to watch from is older than the server keeps."""


class ConfigMapWatch:
    def __init__(
        self,
        ref: ConfigMapRef,
        connection: Callable[[], KubeConnection] = KubeConnection.from_env,
        transport: httpx.AsyncBaseTransport | None = None,
        *,
        backoff_s: float = 0.2,
        backoff_max_s: float = 10.0,
        on_status: Callable[[str], None] = lambda status: None,
    ) -> None:
        self.ref = ref
        self._connection = connection
        self._transport = transport
        self.backoff_s = backoff_s
        self.backoff_max_s = backoff_max_s
        self.on_status = on_status  # "listing", "watching", "backing off: ..." for /routing
        self.version: str | None = None  # the last resourceVersion seen (events and bookmarks)
        self.relists = 0
        self.rewatches = 0

    async def follow(self) -> AsyncIterator[Seen]:
        """Every version of the document, from the current one on, until cancelled."""
        delay = self.backoff_s
        # A list after a 410 (or a watch the server replays) can give the version already
        # delivered again: the follower hears of each version once.
        delivered: str | None = None
        async with self._connection().async_client(self._transport) as client:
            while True:
                try:
                    if self.version is None:
                        self.on_status("listing")
                        seen = await self._list(client)
                        self.relists += 1
                        delay = self.backoff_s
                        if seen is not None and seen.version != delivered:
                            delivered = seen.version
                            yield seen
                    self.on_status("watching")
                    async for seen in self._watch(client):
                        delay = self.backoff_s
                        if seen.version != delivered:
                            delivered = seen.version
                            yield seen
                    self.rewatches += 1  # ended by the server: open it again from the version
                except WatchExpired:
                    log.info("watch of %s expired (410 Gone): listing again", self.ref)
                    self.version = None
                except (httpx.HTTPError, ValueError, OSError) as exc:
                    why = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                    self.on_status(f"backing off: {why}")
                    log.warning("watch of %s failed (%s); retrying in ~%.1fs", self.ref, why, delay)
                    await asyncio.sleep(delay * random.uniform(0.5, 1.5))
                    delay = min(delay * 2, self.backoff_max_s)
                    self.rewatches += 1

    async def _list(self, client: httpx.AsyncClient) -> Seen | None:
        response = await client.get(self._collection(), params=self._selector())
        if response.status_code != 200:
            raise httpx.HTTPStatusError(
                f"list: {status_message(response)}", request=response.request, response=response
            )
        body = response.json()
        items = body.get("items") or []
        list_version = str((body.get("metadata") or {}).get("resourceVersion", ""))
        if not items:
            self.version = list_version or None
            if self.version is None:
                raise ValueError("list answered with no resourceVersion")
            return Seen(self.version, None, "the ConfigMap does not exist")
        seen = self._seen(items[0])
        # Watch from the list's version (the server's now), not the object's: an object
        # unchanged for long has a version older than the server keeps (410 at once).
        self.version = list_version or seen.version
        return seen

    async def _watch(self, client: httpx.AsyncClient) -> AsyncIterator[Seen]:
        params = {
            **self._selector(),
            "watch": "1",
            "resourceVersion": self.version or "",
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(WATCH_TIMEOUT_S),
        }
        timeout = httpx.Timeout(IDLE_READ_S, connect=5.0)
        async with client.stream("GET", self._collection(), params=params, timeout=timeout) as r:
            if r.status_code == 410:
                raise WatchExpired
            if r.status_code != 200:
                await r.aread()
                raise httpx.HTTPStatusError(
                    f"watch: {status_message(r)}", request=r.request, response=r
                )
            async for line in r.aiter_lines():
                if not line.strip():
                    continue
                event = json.loads(line)
                seen = self._event(event)
                if seen is not None:
                    yield seen

    def _event(self, event: Any) -> Seen | None:
        kind = event.get("type") if isinstance(event, dict) else None
        obj = event.get("object") if isinstance(event, dict) else None
        if kind == "ERROR":
            code = obj.get("code") if isinstance(obj, dict) else None
            if code == 410:
                raise WatchExpired
            message = obj.get("message") if isinstance(obj, dict) else obj
            raise ValueError(f"watch ERROR event: {code} {message}")
        if not isinstance(obj, dict):
            raise ValueError(f"watch event without an object: {str(event)[:200]}")
        version = str((obj.get("metadata") or {}).get("resourceVersion", ""))
        if version:
            self.version = version
        if kind == "BOOKMARK":
            return None
        if kind == "DELETED":
            return Seen(version, None, "the ConfigMap was deleted")
        if kind in ("ADDED", "MODIFIED"):
            return self._seen(obj)
        raise ValueError(f"unknown watch event type {kind!r}")

    def _seen(self, obj: Any) -> Seen:
        try:
            stored = document_of(obj, self.ref)
        except ConfigError as exc:
            version = str(((obj or {}).get("metadata") or {}).get("resourceVersion", ""))
            return Seen(version, None, "; ".join(exc.messages))
        return Seen(stored.version, stored.text)

    def _collection(self) -> str:
        return f"/api/v1/namespaces/{self.ref.namespace}/configmaps"

    def _selector(self) -> dict[str, str]:
        return {"fieldSelector": f"metadata.name={self.ref.name}"}

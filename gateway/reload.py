"""Live reload of routing: every new document is validated, then swapped in whole, or rejected
with the last good one kept (``Reloader.offer``). Where documents come from is the caller's: the
file poller here (the default), or the ConfigMap watch (gateway/configmap_reload.py).

The file is polled by content hash (survives editors that replace the file and Kubernetes
ConfigMap symlink swaps, which change no inode we could watch) and reloaded at once on SIGHUP."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
from collections.abc import Callable
from pathlib import Path

from gateway.state import GatewayState, ReloadError, RoutingSource, Snapshot, now_iso
from routing_config import ConfigError, parse_config

log = logging.getLogger("gateway.reload")


class Reloader:
    def __init__(
        self,
        path: Path,
        state: GatewayState,
        build: Callable[..., Snapshot],
        on_success: Callable[[], None] = lambda: None,
        on_failure: Callable[[], None] = lambda: None,
    ) -> None:
        self.path = path
        self.state = state
        self.build = build
        self.on_success = on_success
        self.on_failure = on_failure
        self.seen_hash = digest(state.snapshot.loaded.text.encode())
        self.wake = asyncio.Event()
        if state.source is None:
            state.source = RoutingSource("file", str(path), self.seen_hash)

    def check(self, force: bool = False) -> bool:
        """Reload if the file's bytes changed (or ``force``); True when a new config took effect."""
        try:
            data = self.path.read_bytes()
        except OSError as exc:
            # Mid-swap a ConfigMap path can briefly vanish; keep serving and look again soon.
            self.reject([f"{self.path}: cannot read: {exc.strerror or exc}"])
            return False
        current = digest(data)
        if current == self.seen_hash and not force:
            return False
        self.seen_hash = current
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            self.reject([f"{self.path}: not valid UTF-8"])
            return False
        return self.offer(text, current, force=force)

    def offer(self, text: str, version: str, *, force: bool = False) -> bool:
        """Validate ``text`` (the source's ``version`` of the document) and swap it in; True when
        a new config took effect. An invalid one is rejected: the last good config stays."""
        try:
            loaded = parse_config(text)
        except ConfigError as exc:
            self.reject(exc.messages, version)
            return False
        self._note_version(version, taken=True)
        if loaded.revision == self.state.snapshot.loaded.revision and not force:
            self.state.last_reload_error = None
            return False
        self.state.snapshot = self.build(loaded, previous=self.state.snapshot)
        self.state.last_reload_error = None
        self.on_success()
        log.info("routing reloaded: revision %s (%s)", loaded.revision, self._where())
        return True

    def request(self) -> None:
        """SIGHUP: reload at once, even if the file looks unchanged."""
        self.wake.set()

    async def run(self, interval: float) -> None:
        while True:
            try:
                await asyncio.wait_for(self.wake.wait(), timeout=interval)
                forced = True
            except TimeoutError:
                forced = False
            self.wake.clear()
            self.check(force=forced)

    def reject(self, messages: list[str], version: str | None = None) -> None:
        """A document (or the lack of one) that cannot take effect: said once, kept on /routing."""
        if version is not None:
            self._note_version(version, taken=False)
        error = self.state.last_reload_error
        if error is None or list(error.messages) != messages:
            log.error(
                "routing rejected (%s), still serving revision %s: %s",
                self._where(),
                self.state.snapshot.loaded.revision,
                "; ".join(messages),
            )
            self.on_failure()
        self.state.last_reload_error = ReloadError(at=now_iso(), messages=tuple(messages))

    def _note_version(self, version: str, *, taken: bool) -> None:
        source = self.state.source
        if source is None:
            return
        if taken:
            self.state.source = dataclasses.replace(source, version=version, seen_version=None)
        else:
            self.state.source = dataclasses.replace(source, seen_version=version)

    def _where(self) -> str:
        source = self.state.source
        return f"{source.kind} {source.location}" if source is not None else str(self.path)


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()

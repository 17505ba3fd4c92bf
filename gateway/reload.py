"""Live reload of routing.yaml: poll the content hash (survives editors that replace the file and
Kubernetes ConfigMap symlink swaps, which change no inode we could watch) and reload on SIGHUP."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable
from pathlib import Path

from gateway.state import GatewayState, ReloadError, Snapshot, now_iso
from routing_config import ConfigError, load_config

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

    def check(self, force: bool = False) -> bool:
        """Reload if the file's bytes changed (or ``force``); True when a new config took effect."""
        try:
            data = self.path.read_bytes()
        except OSError as exc:
            # Mid-swap a ConfigMap path can briefly vanish; keep serving and look again soon.
            self._fail([f"{self.path}: cannot read: {exc.strerror or exc}"], None)
            return False
        current = digest(data)
        if current == self.seen_hash and not force:
            return False
        self.seen_hash = current
        try:
            loaded = load_config(self.path)
        except ConfigError as exc:
            self._fail(exc.messages, current)
            return False
        if loaded.revision == self.state.snapshot.loaded.revision and not force:
            self.state.last_reload_error = None
            return False
        self.state.snapshot = self.build(loaded, previous=self.state.snapshot)
        self.state.last_reload_error = None
        self.on_success()
        log.info("routing.yaml reloaded: revision %s", loaded.revision)
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

    def _fail(self, messages: list[str], seen: str | None) -> None:
        error = self.state.last_reload_error
        if error is None or list(error.messages) != messages:
            log.error(
                "routing.yaml rejected, still serving revision %s: %s",
                self.state.snapshot.loaded.revision,
                "; ".join(messages),
            )
            self.on_failure()
        self.state.last_reload_error = ReloadError(at=now_iso(), messages=tuple(messages))


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()

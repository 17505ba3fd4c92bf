"""Routing from a ConfigMap through the Kubernetes API, instead of polling a mounted file.

A mounted ConfigMap reaches a pod only on the kubelet's sync period plus its cache TTL (a
minute or more), so gateway pods would route the same customer differently for that long after
a flip. Watching the object through the API delivers each change to every pod as it is written.
The watch itself (list, watch from the resourceVersion, bookmarks, re-list on 410 Gone,
back-off) is the routing library's (routing_config/store/configmap_watch.py); here every
document it sees goes through the same validate-then-swap as a file reload (gateway/reload.py),
so an invalid one never takes effect and is reported on /routing. SIGHUP lists again at once.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging

from gateway.reload import Reloader
from routing_config.store.configmap_watch import ConfigMapWatch
from routing_config.store.location import ConfigMapRef

log = logging.getLogger("gateway.reload")

RESTART_PAUSE_S = 1.0


class ConfigMapReloader:
    def __init__(self, ref: ConfigMapRef, reloader: Reloader, watch: ConfigMapWatch) -> None:
        self.ref = ref
        self.reloader = reloader
        self.watch = watch
        self.wake = asyncio.Event()
        self.restart_pause_s = RESTART_PAUSE_S
        watch.on_status = self._status

    def request(self) -> None:
        """SIGHUP: list the ConfigMap again now."""
        self.wake.set()

    async def run(self) -> None:
        while True:
            follower = asyncio.create_task(self._follow())
            waker = asyncio.create_task(self.wake.wait())
            try:
                await asyncio.wait({follower, waker}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in (follower, waker):
                    task.cancel()
                await asyncio.gather(follower, waker, return_exceptions=True)
            self.watch.version = None  # the next follow lists afresh
            if self.wake.is_set():
                self.wake.clear()
                log.info("SIGHUP: listing configmap %s again", self.ref)
                continue
            # The follower never ends by itself; if something it did not expect ended it, say
            # so and start again after a pause rather than spin.
            error = follower.exception() if not follower.cancelled() else None
            log.error("following configmap %s stopped (%r); starting again", self.ref, error)
            await asyncio.sleep(self.restart_pause_s)

    async def _follow(self) -> None:
        async for seen in self.watch.follow():
            if seen.text is None:
                self.reloader.reject([f"configmap {self.ref}: {seen.problem}"], seen.version)
            else:
                self.reloader.offer(seen.text, seen.version)

    def _status(self, status: str) -> None:
        state = self.reloader.state
        if state.source is not None:
            state.source = dataclasses.replace(state.source, watch=status)

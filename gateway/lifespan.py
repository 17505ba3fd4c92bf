"""What one gateway process runs while it serves: the forwarding client, the proxy, the loops.

Opened when the app starts, in the running loop: the upstream client and the health checks'
client, the proxy (``GatewayApp.proxy``, which the prediction paths wait for) and the shadow
mirror; then the background loops (health checks, routing reloads from a file's poll or a
ConfigMap's watch, /stats samples, the summed metrics' file under several workers) and SIGHUP
for a reload now. All of it stops at shutdown, after uvicorn has finished the requests in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import httpx

from gateway.admission import Admission
from gateway.configmap_reload import ConfigMapReloader
from gateway.health import HealthChecker
from gateway.metrics import GatewayMetrics
from gateway.metrics_share import SharedCounters
from gateway.prediction_log import PredictionLog
from gateway.proxy import Proxy
from gateway.reload import Reloader
from gateway.settings import GatewaySettings
from gateway.shadow.ledger import ShadowLedger
from gateway.shadow.mirror import Mirror
from gateway.state import GatewayState, RoutingSource, Snapshot, shadow_note
from gateway.stats import StatsSampler
from gateway.upstream import Upstream
from routing_config.replica_key import replica_address_key
from routing_config.store.configmap_watch import ConfigMapWatch
from routing_config.store.location import configmap_ref

if TYPE_CHECKING:
    from gateway.app import GatewayApp

log = logging.getLogger("gateway")


@dataclass(frozen=True, eq=False)
class Lifespan:
    """The app's lifespan, handed the parts create_app built."""

    settings: GatewaySettings
    state: GatewayState
    build: Callable[..., Snapshot]  # Snapshot.build with the process's settings
    metrics: GatewayMetrics
    ledger: ShadowLedger
    stats: StatsSampler
    admission: Admission
    shared: SharedCounters | None  # every worker's counts, under ``serve --workers N``
    open_upstream: Callable[[], Upstream]
    health_transport: httpx.AsyncBaseTransport | None
    prediction_log: PredictionLog | None = None  # records what clients got, when it is on

    @asynccontextmanager
    async def __call__(self, app: GatewayApp) -> AsyncIterator[None]:
        settings, state, metrics, shared = self.settings, self.state, self.metrics, self.shared
        forwarder = self.open_upstream()
        health_client = httpx.AsyncClient(transport=self.health_transport)
        checker = HealthChecker(lambda: state, health_client, settings.health_timeout_s)
        background: set[asyncio.Task[object]] = set()

        def after_reload() -> None:
            metrics.reloads.inc()
            log_shadow(state)
            if state.hosts is not None:  # hosts the new config names: looked up now
                looked_up = asyncio.create_task(state.hosts.refresh())
                background.add(looked_up)
                looked_up.add_done_callback(background.discard)
            # New replicas are "unknown" until checked: check now rather than next interval.
            task = asyncio.create_task(checker.check_all())
            background.add(task)
            task.add_done_callback(background.discard)

        hosts = state.hosts
        if hosts is not None:

            def hosts_changed() -> None:
                # Same config, new addresses: members that stay keep their health.
                state.snapshot = self.build(state.snapshot.loaded, previous=state.snapshot)
                task = asyncio.create_task(checker.check_all())
                background.add(task)
                task.add_done_callback(background.discard)

            hosts.on_change = hosts_changed
            await hosts.refresh()  # one member per address before the first health round

        ref = configmap_ref(str(settings.routing_file))
        if ref is not None:
            state.source = RoutingSource("configmap", str(ref), watch="starting")
        reloader = Reloader(
            settings.routing_file,
            state,
            self.build,
            on_success=after_reload,
            on_failure=metrics.reload_failures.inc,
        )
        # A ConfigMap is followed through the API's watch; a file (the default) is polled.
        follower = ConfigMapReloader(ref, reloader, ConfigMapWatch(ref)) if ref else None
        log_shadow(state)
        await checker.check_all()  # serve from a known health picture, not an empty one
        mirror = Mirror(
            forwarder,
            self.ledger,
            max_inflight=settings.shadow_max_inflight,
            timeout_s=settings.shadow_timeout_s,
        )
        app.proxy = Proxy(
            state,
            forwarder,
            metrics,
            max_body_bytes=settings.max_body_bytes,
            request_budget_s=settings.request_budget_s,
            mirror=mirror,
            admission=self.admission,
        )
        prediction_log = self.prediction_log
        if hosts is not None:
            app.proxy.connect_failed = lambda r: hosts.connect_failed(replica_address_key(r.url))
        if prediction_log is not None:
            prediction_log.start()
            app.proxy.record = mirror.record = prediction_log.record
            app.proxy.log_features = prediction_log.log_features
        loops = [
            asyncio.create_task(checker.run(settings.health_interval_s)),
            asyncio.create_task(
                follower.run() if follower else reloader.run(settings.reload_interval_s)
            ),
            asyncio.create_task(self.stats.run()),
        ]
        if hosts is not None:
            loops.append(asyncio.create_task(hosts.run(settings.dns_refresh_s)))
        if shared is not None:
            shared.write()  # this worker is in the sum from the start
            loops.append(asyncio.create_task(shared.run()))
        loop = asyncio.get_running_loop()
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signal.SIGHUP, (follower or reloader).request)
        try:
            yield
        finally:
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.remove_signal_handler(signal.SIGHUP)
            for task in [*loops, *background]:
                task.cancel()
            await asyncio.gather(*loops, *background, return_exceptions=True)
            if shared is not None:
                # uvicorn has finished the in-flight requests by now: the file gets them all.
                shared.write()
            app.proxy = None
            if hosts is not None:
                await hosts.aclose()
            await mirror.aclose()
            await forwarder.aclose()
            await health_client.aclose()
            if prediction_log is not None:
                await asyncio.to_thread(prediction_log.close)  # writes what is queued


def log_shadow(state: GatewayState) -> None:
    if state.snapshot.shadow is not None:
        log.info("shadow: %s", shadow_note(state.snapshot.shadow))

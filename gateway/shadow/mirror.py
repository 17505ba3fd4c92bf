"""The copies of prediction requests to the shadow version (plan.py says which are copied).

A mirror starts after the client's answer is ready and runs as a background task on the same
event loop: by the time it first runs, the client's bytes are already written (the server writes
synchronously once ``Proxy.forward`` returns), so it never delays them, and nothing it does can
reach the client's answer. It has its own timeout, no retries and no fallback; its failures are
counted here, never in the client-facing metrics, and never eject a replica (the shadow version
may be serving a canary share to clients too).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from gateway.errors import GatewayError, UpstreamFailure
from gateway.lanes import Lane, V2Call, answer_header_length
from gateway.pool import ReplicaPool
from gateway.settling import Flight
from gateway.shadow.compare import BadAnswer, compare_rows, parse_rows
from gateway.shadow.ledger import ShadowLedger
from gateway.shadow.plan import ShadowPlan
from gateway.shadow.tally import OUTCOMES
from gateway.upstream.base import Upstream
from gateway.wire import Headers
from outcomes.records import Answered
from protocols.scores import MODEL_API, ScoreSource
from vocabulary.headers import SHADOW_OF as SHADOW_OF_HEADER

log = logging.getLogger("gateway.shadow")

SHADOW_OF = SHADOW_OF_HEADER.encode()


@dataclass(frozen=True, slots=True)
class _Copy:
    """One client request to copy, and the answer the client got."""

    plan: ShadowPlan
    pool: ReplicaPool
    primary: str  # the version that served the client
    path: str
    body: bytes
    headers: Headers
    request_id: bytes
    client_body: bytes
    client_seconds: float
    logged: Answered | None = None  # the client's answer as the prediction log has it
    # The shadow version's lane (gateway/lanes.py), None when the request goes to it as it came
    # (a /predict to a model-API version); the V2 door's call; where the client's answer holds
    # its score (None: the model API).
    lane: Lane | None = None
    call: V2Call | None = None
    client_source: ScoreSource | None = None
    client_header_length: int | None = None


class Mirror:
    """Bounded background copies to the shadow version, compared into a ShadowLedger."""

    def __init__(
        self, upstream: Upstream, ledger: ShadowLedger, *, max_inflight: int, timeout_s: float
    ) -> None:
        self.upstream = upstream
        self.ledger = ledger
        self.max_inflight = max_inflight
        self.timeout_s = timeout_s
        self.tasks: set[asyncio.Task[None]] = set()
        # The prediction log's writer, when it is on: each compared shadow answer goes to it.
        self.record: Callable[[Answered], None] | None = None

    def offer(
        self,
        plan: ShadowPlan,
        pool: ReplicaPool,
        primary: str,
        path: str,
        body: bytes,
        headers: Headers,
        sticky_key: bytes | None,
        request_id: bytes,
        client_body: bytes,
        client_seconds: float,
        logged: Answered | None = None,
        lane: Lane | None = None,
        call: V2Call | None = None,
        client_source: ScoreSource | None = None,
        client_header_length: int | None = None,
        flight: Flight | None = None,
    ) -> None:
        """Called with a client's successful answer; copies the request if the plan selects it.
        ``flight``: the client request's snapshot's, which counts the copy until it is counted
        (gateway/settling.py)."""
        if primary == plan.version or not plan.selects(sticky_key, random.random()):
            return  # an answer from the shadow version itself has nothing to be compared with
        ledger = self.ledger
        ledger.follow(plan.section, plan.since)
        if len(self.tasks) >= self.max_inflight:
            ledger.count(plan.section, primary, plan.version, "dropped")
            return
        copy = _Copy(
            plan,
            pool,
            primary,
            path,
            body,
            headers,
            request_id,
            client_body,
            client_seconds,
            logged,
            lane,
            call,
            client_source,
            client_header_length,
        )
        task = asyncio.get_running_loop().create_task(self._mirror(copy, flight))
        if flight is not None:
            flight.count += 1
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _mirror(self, copy: _Copy, flight: Flight | None) -> None:
        try:
            outcome = await self._compare(copy)
        except Exception:  # a bug here must never surface anywhere near a client
            log.exception("shadow mirror of %s failed", copy.request_id.decode("latin-1"))
            outcome = "protocol_error"
        finally:
            if flight is not None:
                flight.count -= 1  # counted by now, or in the line below (no await between)
        if outcome is not None:
            self.ledger.count(copy.plan.section, copy.primary, copy.plan.version, outcome)

    async def _compare(self, copy: _Copy) -> str | None:
        """The outcome to count, or None when the comparison was recorded."""
        plan = copy.plan
        replica = copy.pool.choose(plan.version)
        if replica is None:
            return "no_replica"
        path, body, headers = copy.path, copy.body, copy.headers
        source = MODEL_API
        if copy.lane is not None:
            try:
                prepared = copy.lane.prepare(path, body, headers, copy.call)
            except GatewayError:
                return "status_4xx"  # the shadow's form of the request cannot be made
            path, body, headers = prepared.path, prepared.body, prepared.headers
            source = prepared.replica_source
        headers = [*headers, (SHADOW_OF, copy.request_id)]
        url = replica.address + path
        start = time.perf_counter()
        try:
            resp = await self.upstream.post(url, body, headers, self.timeout_s)
        except UpstreamFailure as failure:
            return failure.cause if failure.cause in OUTCOMES else "protocol_error"
        seconds = time.perf_counter() - start
        if resp.status >= 500 or resp.status < 100:
            return "status_5xx" if resp.status >= 500 else "protocol_error"
        if resp.status != 200:
            return "status_4xx"
        request = copy.request_id.decode("latin-1")
        # Each side read in its own protocol (the shadow's answer as its replicas gave it).
        header_length = answer_header_length(resp.head) if source.protocol == "v2" else None
        client_source = copy.client_source or MODEL_API
        try:
            client_rows = parse_rows(copy.client_body, client_source, copy.client_header_length)
            comparisons = compare_rows(client_rows, parse_rows(resp.body, source, header_length))
        except BadAnswer as exc:
            log.warning("shadow answer to %s not comparable: %s", request, exc)
            return "bad_answer"
        latency = {"primary": copy.client_seconds, "shadow": seconds}
        self.ledger.add(plan.section, copy.primary, plan.version, comparisons, request, latency)
        if copy.logged is not None and self.record is not None:
            shadow_source = source if source.protocol == "v2" else None
            self.record(
                copy.logged.as_shadow(plan.version, resp.body, shadow_source, header_length)
            )
        return None

    async def aclose(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)

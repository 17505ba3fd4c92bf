"""Requests waiting for room on a version's replicas: first come, first served, for a bounded time.

When every healthy replica of a version holds its in-flight cap, a request waits here up to
``GATEWAY_QUEUE_TIMEOUT_S`` for one of that version's requests to end, and is shed (503) only
then. Why not shed at once: under overload a refused client asks again at once (wrk does, as do
clients that ignore ``Retry-After``), so an immediate 503 turns each surplus connection into a
loop of requests the gateway reads, routes and refuses as fast as it can, on the cores the
replicas need. Profiled, the refusal itself is about 1% of a gateway worker; reading and writing
the requests is the cost (and the client's side of it besides), so what helps is fewer
refusals, not cheaper ones. Measured on two cores shared with three model replicas (bench/README.md,
goodput under overload): with 4x the replicas' capacity in connections, refusing at once made
about 2,000 refusals every 4 to 6 s and goodput of 0.76 to 1.07x that at 1x; with a 0.1 s wait
there were 0 to 170, at 0.99 to 1.22x; at 16x, 0.53 to 0.65x against 0.63 to 0.75x. A replica
that finishes hands its room to the oldest waiter at once, so it never idles while requests
wait; each surplus connection costs at most one request per wait.

The queue is bounded in time by the wait and in length by the connection cap (each waiter is
a whole request of an open connection, already read); nothing else grows with the load.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque

from gateway.pool import Replica, ReplicaState


class Admission:
    """The waiting requests of each version, and the hand-over of a replica's room to them."""

    def __init__(self, wait_s: float) -> None:
        self.wait_s = wait_s  # 0: shed at once
        self._waiting: dict[str, deque[asyncio.Future[Replica | None]]] = {}

    def queued(self) -> int:
        return sum(len(queue) for queue in self._waiting.values())

    async def wait(self, version: str, until: float) -> Replica | None:
        """Wait for room on a replica of ``version`` until ``until`` (loop time): the replica,
        its in-flight count already holding this request, or None when the time ran out."""
        loop = asyncio.get_running_loop()
        if until <= loop.time():
            return None
        queue = self._waiting.get(version)
        if queue is None:
            queue = self._waiting[version] = deque()
        waiter: asyncio.Future[Replica | None] = loop.create_future()
        queue.append(waiter)
        timer = loop.call_at(until, _expire, queue, waiter)
        try:
            return await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                handed = waiter.result()
                if handed is not None:  # handed over, but nobody is left to use it
                    self.release(handed)
            else:
                waiter.cancel()
                _discard(queue, waiter)
            raise
        finally:
            timer.cancel()

    def release(self, replica: Replica) -> None:
        """A request on ``replica`` ended: its room passes to the oldest waiter of the version
        at once (no other request can take it in between), or is freed."""
        queue = self._waiting.get(replica.version)
        if queue and replica.state is ReplicaState.HEALTHY:
            while queue:
                waiter = queue.popleft()
                if not waiter.done():
                    waiter.set_result(replica)
                    return
        replica.inflight -= 1


def _expire(
    queue: deque[asyncio.Future[Replica | None]], waiter: asyncio.Future[Replica | None]
) -> None:
    if not waiter.done():
        waiter.set_result(None)
        _discard(queue, waiter)


def _discard(
    queue: deque[asyncio.Future[Replica | None]], waiter: asyncio.Future[Replica | None]
) -> None:
    # Waits share one bound, so the one expiring is nearly always the oldest.
    if queue and queue[0] is waiter:
        queue.popleft()
    else:
        with contextlib.suppress(ValueError):  # already handed over or expired
            queue.remove(waiter)

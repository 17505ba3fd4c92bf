"""When a routing revision has settled: no request routed by an earlier one is still in flight.

A reload swaps the snapshot at once, but a request finishes on the snapshot it started with, and
is counted (``gateway_requests_total``, the shadow's tallies) when it finishes. So for a moment
after a reload the counters still grow with traffic the earlier routing sent: a rollout window
that began at the reload would count, say, a candidate's request in the reference window that
gives stable everything. Each snapshot therefore counts what it has in flight (client requests
and their shadow copies), and ``gateway_config_settled_info`` reports the oldest revision that
still has some: once it reports the revision written, everything counted after that is of it.
"""

from __future__ import annotations


class Flight:
    """The requests one snapshot routed that are not counted yet. The event loop is one thread,
    so a plain integer: ``count += 1`` when one starts, ``-= 1`` once it is counted."""

    __slots__ = ("revision", "count")

    def __init__(self, revision: str) -> None:
        self.revision = revision
        self.count = 0


def still_flying(earlier: tuple[Flight, ...], previous: Flight) -> tuple[Flight, ...]:
    """The flights a new snapshot must wait for, oldest first: those of ``earlier`` (the
    previous snapshot's) and ``previous`` that have requests in flight. One that has none
    never gets any again (no request can start on a snapshot once it was replaced), so the
    tuple stays as short as the requests that outlive a reload."""
    return tuple(flight for flight in (*earlier, previous) if flight.count > 0)


def settled_revision(current: Flight, earlier: tuple[Flight, ...]) -> str:
    """The oldest revision with a request still in flight; ``current``'s once none of the
    earlier ones has any."""
    for flight in earlier:
        if flight.count > 0:
            return flight.revision
    return current.revision

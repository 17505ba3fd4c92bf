"""Replica host names resolved by the gateway: one routing.yaml entry, many addresses.

A replica entry may name a host with many addresses (a Kubernetes headless Service: one
Deployment per version, scaled by ``kubectl scale`` or an HPA, one entry in routing.yaml). The
gateway looks each such host up itself and the pool (gateway/pool.py) holds one member per
address, health-checked, balanced over and ejected on its own; its metric labels stay the
entry's URL, a closed set, whatever the addresses.

When: at start-up before the first health round, every ``GATEWAY_DNS_REFRESH_S`` (5 s), and
at once when a request could not connect to a member of the host (an address gone: its pod
deleted), at most once per ``GATEWAY_DNS_MIN_GAP_S`` per host so a dead host cannot turn every
failed request into a lookup. A changed answer rebuilds the snapshot from the same config (the
reload's way): members whose address stays keep their health and in-flight count; a request
on a member that left finishes on the snapshot it began with.

What an answer means:
- addresses: one member each (in the resolver's order, duplicates dropped);
- the name is unknown (no address at all: a headless Service with no ready pod): the entry is
  one member dialed by name, as before this module existed, which fails its health checks like
  any unreachable replica: the version has no healthy replica and falls back like any other
  (and a client whose own transport knows the name, a test's, still reaches it);
- no answer (the resolver failed for another reason, or timed out): the last answer stands;
  a host never answered for is dialed by name.
Hosts the local stack maps (``GATEWAY_RESOLVE``), IP literals and ``https`` entries (whose
certificate is checked against the name, so they must be dialed by it) are never looked up.

The lookup is the event loop's ``getaddrinfo`` (run in its thread pool: the loop never blocks);
tests inject a resolver of their own.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from gateway.periodic import every
from routing_config import RoutingConfig
from routing_config.replica_key import replica_address_key
from routing_config.types import DEFAULT_PORTS

__all__ = [
    "HostTable",
    "Lookup",
    "Resolver",
    "UnknownHost",
    "hosts_to_look_up",
    "member_address",
    "resolve_with_loop",
]

log = logging.getLogger("gateway.dns")

# (host, port) -> the addresses it resolves to; raises UnknownHost when it has none, any other
# exception when it could not tell.
Resolver = Callable[[str, int], Awaitable[list[str]]]
LOOKUP_TIMEOUT_S = 2.0


class UnknownHost(Exception):
    """The name resolves to no address (NXDOMAIN, or no record of the family asked)."""


# getaddrinfo's "no such name" and "no address": the answer is "nothing", not "no answer".
_NO_ADDRESS = {socket.EAI_NONAME} | (
    {socket.EAI_NODATA} if hasattr(socket, "EAI_NODATA") else set()
)


async def resolve_with_loop(host: str, port: int) -> list[str]:
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        if exc.errno in _NO_ADDRESS:
            raise UnknownHost(str(exc)) from None
        raise
    return [str(info[4][0]) for info in infos]


@dataclass(frozen=True, slots=True)
class Lookup:
    """The last answer for one host: its addresses (empty: the name has none), when, and the
    error of the latest lookup when it gave no answer (the addresses are then the last ones)."""

    addresses: tuple[str, ...]
    at: float
    error: str | None = None

    def as_dict(self) -> dict[str, object]:
        return {"addresses": list(self.addresses), "resolved_at": self.at, "error": self.error}


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def hosts_to_look_up(
    config: RoutingConfig, resolve: Mapping[str, str]
) -> dict[str, tuple[str, int]]:
    """Each replica entry's host the gateway must resolve: key (``host:port``) -> (host,
    port). Not IP literals, not hosts the local stack's map names, not ``https`` entries."""
    mapped = {name.lower() for name in resolve}
    out: dict[str, tuple[str, int]] = {}
    for spec in config.versions.values():
        for url in spec.replicas:
            key = replica_address_key(url)
            parts = urlsplit(url)
            host = parts.hostname or ""
            if key in mapped or not host or _is_ip(host) or parts.scheme != "http":
                continue  # https: TLS checks the certificate against the name, not an address
            out[key] = (host, parts.port or DEFAULT_PORTS[parts.scheme])
    return out


def member_address(url: str, address: str) -> str:
    """The base URL a member dials: the entry's scheme, port and path, on one address."""
    parts = urlsplit(url)
    host = f"[{address}]" if ":" in address else address
    port = parts.port or DEFAULT_PORTS[parts.scheme]
    return f"{parts.scheme}://{host}:{port}{parts.path.rstrip('/')}"


class HostTable:
    """The answers, host key -> Lookup, and the loop that keeps them fresh.

    ``on_change`` rebuilds the snapshot; ``hosts`` says what the current config names."""

    def __init__(
        self,
        hosts: Callable[[], dict[str, tuple[str, int]]],
        on_change: Callable[[], None] = lambda: None,
        *,
        resolver: Resolver = resolve_with_loop,
        min_gap_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.hosts = hosts
        self.on_change = on_change
        self.resolver = resolver
        self.min_gap_s = min_gap_s
        self.clock = clock
        self.answers: dict[str, Lookup] = {}
        self._asked: dict[str, float] = {}  # key -> when last looked up (for the gap)
        self._pending: set[asyncio.Task[bool]] = set()

    def addresses(self, key: str) -> tuple[str, ...] | None:
        """The addresses of a host; None when it was never answered for (dial the name)."""
        answer = self.answers.get(key)
        return answer.addresses if answer is not None else None

    async def refresh(self, keys: Iterable[str] | None = None) -> bool:
        """Look up ``keys`` (default: every host the config names) concurrently; True and
        ``on_change`` when any answer's addresses changed."""
        wanted = self.hosts()
        todo = [k for k in (wanted if keys is None else keys) if k in wanted]
        for key in list(self.answers):
            if key not in wanted:
                del self.answers[key]  # a host no longer configured: forget it (bounded)
                self._asked.pop(key, None)
        now = self.clock()
        for key in todo:
            self._asked[key] = now
        results = await asyncio.gather(*(self._lookup(*wanted[k]) for k in todo))
        changed = False
        for key, (addresses, error) in zip(todo, results, strict=True):
            before = self.answers.get(key)
            if addresses is None:  # no answer: keep the last one, say why
                kept = before.addresses if before is not None else None
                if kept is None:
                    log.warning("replica host %s: no answer yet: %s", key, error)
                    continue
                self.answers[key] = Lookup(kept, before.at if before else now, error)
                continue
            self.answers[key] = Lookup(addresses, now)
            if before is None or before.addresses != addresses:
                changed = True
                log.info(
                    "replica host %s resolves to %s",
                    key,
                    ", ".join(addresses) if addresses else "no address",
                )
        if changed:
            self.on_change()
        return changed

    def connect_failed(self, key: str) -> None:
        """A request could not connect to a member of ``key``: look it up again soon, at most
        once per ``min_gap_s``."""
        if key not in self.answers:
            return  # not a host this table resolves (mapped, or an IP)
        now = self.clock()
        if now - self._asked.get(key, float("-inf")) < self.min_gap_s:
            return
        self._asked[key] = now
        task = asyncio.get_running_loop().create_task(self.refresh([key]))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def run(self, interval: float) -> None:
        await every(interval, self.refresh, log, "replica host lookups failed")

    async def aclose(self) -> None:
        for task in self._pending:
            task.cancel()
        await asyncio.gather(*self._pending, return_exceptions=True)

    async def _lookup(self, host: str, port: int) -> tuple[tuple[str, ...] | None, str | None]:
        try:
            found = await asyncio.wait_for(self.resolver(host, port), LOOKUP_TIMEOUT_S)
        except UnknownHost:
            return (), None
        except Exception as exc:  # no answer (a timeout, a server failure): the last one stands
            return None, f"{type(exc).__name__}: {exc}"
        return tuple(dict.fromkeys(found)), None

"""The routing decision: config + pin + sticky key + roll + health -> version and reason.

Pure and deterministic: randomness (``roll``) and health are passed in, nothing here does I/O.
Build a ``RoutingTable`` once per config load; ``decide`` is the per-request hot path.
"""

from __future__ import annotations

import bisect
import hashlib
import math
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Literal, NamedTuple

from routing_config.schema import RoutingConfig

__all__ = [
    "Decision",
    "PinRejected",
    "Reason",
    "RoutingTable",
    "decide",
    "expected_shares",
    "moved_share",
    "sticky_score",
]

Reason = Literal["weighted", "sticky", "pinned", "blue_green", "fallback"]
Health = Callable[[str], bool] | Collection[str]

# Part of the sticky-hash contract: changing it reassigns every sticky key.
_HASH_PERSON = b"sf-sticky-v1"


class Decision(NamedTuple):
    # A tuple, not a frozen dataclass: one is made per request, and a frozen dataclass's
    # __init__ (object.__setattr__ per field) showed in profiles.
    version: str
    reason: Reason
    fallback_from: str | None = None


class PinRejected(Exception):
    """A client pinned a version it may not pin; the proxy answers 400 naming ``allowed``."""

    def __init__(self, asked: str, allowed: tuple[str, ...]) -> None:
        self.asked = asked
        self.allowed = allowed
        super().__init__(
            f"version {asked!r} cannot be pinned; allowed: {', '.join(allowed) or 'none'}"
        )


def sticky_score(version: str, key: str, weight: int) -> float:
    """Weighted rendezvous score of ``key`` for ``version``; the highest score wins.

    The hash is blake2b, never ``hash()``: every gateway process must agree on a key's version.
    """
    digest = hashlib.blake2b(
        _hash_prefix(version) + key.encode(), digest_size=8, person=_HASH_PERSON
    ).digest()
    return _score(digest, weight)


def _hash_prefix(version: str) -> bytes:
    # The NUL separator keeps ("v1", "2x") and ("v12", "x") apart.
    return version.encode() + b"\x00"


_TWO_TO_MINUS_52 = 1.0 / (1 << 52)  # exact: a power of two


def _score(digest: bytes, weight: int) -> float:
    # Top 52 bits + 0.5 gives u strictly inside (0, 1), exactly representable, so log(u) < 0.
    u = ((int.from_bytes(digest, "big") >> 12) + 0.5) * _TWO_TO_MINUS_52
    # -w / ln(u) is the weighted rendezvous score: P(version wins) = w / sum(w), and a key only
    # moves between two versions when the ratio of their weights changes in the mover's favour.
    return -weight / math.log(u)


@dataclass(frozen=True, slots=True)
class RoutingTable:
    """Everything ``decide`` needs, precomputed from one config so a request allocates little."""

    stable: str
    live: str | None  # blue/green mode: the live colour's version; None in canary mode
    pin_allowed: frozenset[str] | None  # None when pinning is not configured
    pin_allowed_sorted: tuple[str, ...]
    sticky_header: str | None
    # Positive-weight versions in name order (weight 0 means never chosen) with cumulative
    # weights, so an unkeyed roll is one bisect.
    versions: tuple[str, ...]
    weights: tuple[int, ...]
    cumulative: tuple[int, ...]
    # blake2b states already fed with each version's prefix; copied per sticky request.
    hashers: tuple[hashlib.blake2b, ...] = field(compare=False, repr=False)

    @classmethod
    def from_config(cls, config: RoutingConfig) -> RoutingTable:
        chosen = sorted((name, w) for name, w in config.weights().items() if w > 0)
        cumulative: list[int] = []
        running = 0
        for _, weight in chosen:
            running += weight
            cumulative.append(running)
        pinning = config.pinning
        return cls(
            stable=config.stable,
            live=config.live_version() if config.mode == "blue_green" else None,
            pin_allowed=frozenset(pinning.allow) if pinning else None,
            pin_allowed_sorted=tuple(sorted(set(pinning.allow))) if pinning else (),
            sticky_header=config.canary.sticky_header if config.canary else None,
            versions=tuple(name for name, _ in chosen),
            weights=tuple(w for _, w in chosen),
            cumulative=tuple(cumulative),
            hashers=tuple(
                hashlib.blake2b(_hash_prefix(name), digest_size=8, person=_HASH_PERSON)
                for name, _ in chosen
            ),
        )

    def decide(
        self,
        *,
        pin: str | None,
        sticky_key: str | bytes | None,
        roll: float,
        healthy: Health,
    ) -> Decision:
        """``pin``: value of the pinning header (None if absent). ``sticky_key``: value of the
        sticky header (None if absent; the header's bytes, or text). ``roll``: uniform in
        [0, 1), used only when no sticky key applies. ``healthy``: says whether a version has a
        healthy replica."""
        if pin and self.pin_allowed is not None:
            if pin not in self.pin_allowed:
                raise PinRejected(pin, self.pin_allowed_sorted)
            # A pinned client asked for exactly this version: never substitute another.
            return Decision(pin, "pinned")

        chosen: str
        reason: Reason
        if self.live is not None:
            chosen, reason = self.live, "blue_green"
        elif sticky_key:
            chosen, reason = self.pick_sticky(sticky_key), "sticky"
        else:
            chosen, reason = self.pick_weighted(roll), "weighted"

        if chosen != self.stable and not _is_healthy(healthy, chosen):
            return Decision(self.stable, "fallback", fallback_from=chosen)
        return Decision(chosen, reason)

    def pick_weighted(self, roll: float) -> str:
        """The version whose cumulative-weight band contains ``roll`` (in [0, 1))."""
        i = bisect.bisect_right(self.cumulative, roll * self.cumulative[-1])
        # min() guards a roll of exactly 1.0 (or float rounding right at the top).
        return self.versions[min(i, len(self.versions) - 1)]

    def pick_sticky(self, key: str | bytes) -> str:
        """The version a sticky key maps to, by weighted rendezvous hashing.

        A text key is hashed as UTF-8. Header bytes are decoded as Latin-1 first (what a header
        value means in HTTP), so a key hashes the same whether it came as bytes or text.
        """
        if len(self.versions) == 1:
            return self.versions[0]
        if isinstance(key, str):
            raw = key.encode()
        elif key.isascii():
            raw = key  # the same bytes either way: no decode, no encode
        else:
            raw = key.decode("latin-1").encode()
        best = self.versions[0]
        best_score = -1.0
        for name, weight, base in zip(self.versions, self.weights, self.hashers, strict=True):
            hasher = base.copy()
            hasher.update(raw)
            score = _score(hasher.digest(), weight)
            if score > best_score:
                best, best_score = name, score
        return best

    def route_key(self, key: str) -> str:
        """Where a sticky key goes ignoring pins and health (the live version in blue/green)."""
        return self.live if self.live is not None else self.pick_sticky(key)


def _is_healthy(healthy: Health, version: str) -> bool:
    return healthy(version) if callable(healthy) else version in healthy


def decide(
    config: RoutingTable | RoutingConfig,
    *,
    pin: str | None,
    sticky_key: str | None,
    roll: float,
    healthy: Health,
) -> Decision:
    """Convenience wrapper; pass a prebuilt ``RoutingTable`` on the hot path."""
    table = config if isinstance(config, RoutingTable) else RoutingTable.from_config(config)
    return table.decide(pin=pin, sticky_key=sticky_key, roll=roll, healthy=healthy)


# --- what-if helpers for the CLI `diff` command ------------------------------------------------


def expected_shares(config: RoutingConfig) -> dict[str, float]:
    """Expected fraction of new traffic per version (every version listed)."""
    return {name: weight / 100 for name, weight in config.weights().items()}


def moved_share(
    old: RoutingConfig, new: RoutingConfig, *, sample: int = 20_000
) -> dict[tuple[str, str], float]:
    """Estimated fraction of sticky keys that would move, as ``{(from, to): fraction}``.

    Estimated by routing a fixed sample of synthetic keys through both configs, so repeated
    runs print the same numbers. Only pairs with a move are listed; fractions are of all keys.
    """
    before, after = RoutingTable.from_config(old), RoutingTable.from_config(new)
    counts: dict[tuple[str, str], int] = {}
    for i in range(sample):
        key = f"diff-sample-{i}"
        src, dst = before.route_key(key), after.route_key(key)
        if src != dst:
            counts[(src, dst)] = counts.get((src, dst), 0) + 1
    return {pair: n / sample for pair, n in sorted(counts.items())}

"""Which replica a URL names: one spelling of it for every reader of routing.yaml.

Two keys, both from ``urlsplit``: host names are case-insensitive and a default port is
implied, so ``http://Model-A`` and ``http://model-a:80`` are the same replica.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from routing_config.types import DEFAULT_PORTS

__all__ = ["replica_address_key", "replica_identity"]


def replica_address_key(url: str) -> str:
    """The ``host:port`` of a replica URL: host lower-cased, an IPv6 address in brackets, the
    default port made explicit, any ``user:password@`` dropped.

    The key of the curl ``--resolve`` style map (``GATEWAY_RESOLVE``) the local stack writes
    and the gateway looks replica hosts up in.
    """
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    return f"{host}:{parts.port or DEFAULT_PORTS[parts.scheme]}"


def replica_identity(url: str) -> str:
    """Scheme, ``host:port`` and path: two replica entries with the same identity are one
    replica listed twice."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{replica_address_key(url)}{parts.path.rstrip('/')}"

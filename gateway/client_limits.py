"""The gateway's client limits for one process: its settings, with the connection cap kept under
the open-file limit. What each limit means and the answers over them: httpserver/limits.py, the
limits of the server protocol the gateway shares with the model server.
"""

from __future__ import annotations

import logging
import resource
from typing import TYPE_CHECKING

from httpserver.limits import ClientLimits

if TYPE_CHECKING:
    from gateway.settings import GatewaySettings

__all__ = ["client_limits_for_process", "connection_cap", "raise_fd_limit"]

log = logging.getLogger("gateway")

# File descriptors kept out of the connection cap for everything else a process opens: replica
# connections (up to the in-flight cap per replica), the listening socket, logs, metrics files.
FD_SHARE_FOR_CLIENTS = 0.5


def client_limits_for_process(settings: GatewaySettings) -> ClientLimits:
    """This process's limits: its open-file limit raised first, the cap kept under it."""
    return ClientLimits(
        header_timeout_s=settings.header_timeout_s,
        body_timeout_s=settings.body_timeout_s,
        body_min_rate=settings.body_min_rate,
        max_connections=connection_cap(settings.max_connections, raise_fd_limit()),
        max_body_bytes=settings.max_body_bytes,
        max_head_bytes=settings.max_head_bytes,
        send_timeout_s=settings.send_timeout_s,
    )


def raise_fd_limit() -> int:
    """Raise this process's soft limit on open files to its hard limit; return the new soft one.

    The soft limit is often 1,024 while the hard one is far higher: each client connection and
    each replica connection is a file descriptor, and running out of them stops both."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError) as exc:  # a container may forbid it: keep the soft one
            log.warning("could not raise the open-file limit from %s to %s: %s", soft, hard, exc)
    return soft


def connection_cap(configured: int, fd_limit: int) -> int:
    """The connection cap in effect: the configured one, lowered to a share of the open-file
    limit when it would not leave room for replica connections."""
    if fd_limit == resource.RLIM_INFINITY:
        return configured
    room = max(1, int(fd_limit * FD_SHARE_FOR_CLIENTS))
    if configured > room:
        log.warning(
            "GATEWAY_MAX_CONNECTIONS=%d is over half the open-file limit (%d): using %d",
            configured,
            fd_limit,
            room,
        )
        return room
    return configured

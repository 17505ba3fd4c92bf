"""The background loops' one shape: a round every interval until cancelled, and a round that
raises is logged while the loop goes on (a bug in one round must not stop health checks,
host lookups or metric sharing for good)."""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable


async def every(
    interval_s: float,
    round_: Callable[[], Awaitable[object] | object],
    log: logging.Logger,
    failure: str,
) -> None:
    """Sleep ``interval_s``, run ``round_`` (awaited when it returns an awaitable), repeat;
    ``failure`` is the message logged with the traceback of a round that raised."""
    while True:
        await asyncio.sleep(interval_s)
        try:
            result = round_()
            if inspect.isawaitable(result):
                await result
        except Exception:
            log.exception(failure)

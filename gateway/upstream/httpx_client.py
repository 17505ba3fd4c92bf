"""The forwarding client on httpx: where a test fakes the replicas with ``httpx.MockTransport``.

About 9x the CPU a request of the native client (httpcore re-tries a failing ``import sniffio``
on every lock and rescans its pool on every request), so not for the hot path.
"""

from __future__ import annotations

import asyncio

import httpx

from gateway.errors import UpstreamFailure
from gateway.wire import Headers, Message, head_lines


class HttpxUpstream:
    def __init__(
        self,
        connect_timeout: float,
        read_timeout: float,
        pool_size: int,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.client = httpx.AsyncClient(
            limits=httpx.Limits(max_connections=pool_size, max_keepalive_connections=pool_size),
            transport=transport,
        )

    async def post(self, url: str, body: bytes, headers: Headers, timeout: float) -> Message:
        limits = httpx.Timeout(min(self.read_timeout, timeout), connect=self.connect_timeout)
        try:
            async with asyncio.timeout(timeout):
                resp = await self.client.post(url, content=body, headers=headers, timeout=limits)
        except httpx.ConnectTimeout as exc:
            raise UpstreamFailure("timeout", f"connect timeout to {url}") from exc
        except (httpx.TimeoutException, TimeoutError) as exc:
            raise UpstreamFailure("timeout", f"no answer from {url} in time") from exc
        except httpx.ConnectError as exc:
            raise UpstreamFailure("connect_error", f"cannot connect to {url}: {exc}") from exc
        except httpx.HTTPError as exc:
            raise UpstreamFailure("protocol_error", f"{url}: {type(exc).__name__}") from exc
        return Message(resp.status_code, head_lines(resp.headers.raw), resp.content)

    async def aclose(self) -> None:
        await self.client.aclose()

"""HTTP clients that carry a forwarded request to one replica, behind one small interface.

The hot path uses aiohttp. Measured here as a proxy in front of one backend at 64 connections,
FastAPI on httpx's default transport reached 6 to 10% of nginx's throughput and on aiohttp 57%:
httpcore re-tries a failing ``import sniffio`` on every lock and rescans its pool on every request.
httpx stays for tests (``httpx.MockTransport``), health checks and the CLI. The choice is made in
``open_upstream``, nowhere else, and every client error is translated to ``UpstreamFailure`` here.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Protocol

import aiohttp
import httpx

from gateway.errors import UpstreamFailure

Headers = list[tuple[str, str]]


@dataclass(slots=True)
class UpstreamResponse:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes


class Upstream(Protocol):
    async def post(
        self, url: str, body: bytes, headers: Headers, timeout: float
    ) -> UpstreamResponse:
        """POST and read the whole answer within ``timeout`` seconds, or raise UpstreamFailure."""
        ...

    async def aclose(self) -> None: ...


class AiohttpUpstream:
    def __init__(self, connect_timeout: float, read_timeout: float, pool_size: int) -> None:
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        connector = aiohttp.TCPConnector(limit=pool_size, ttl_dns_cache=60)
        self.session = aiohttp.ClientSession(
            connector=connector,
            auto_decompress=False,  # bytes pass through untouched
            skip_auto_headers=("User-Agent", "Accept-Encoding"),
        )

    async def post(
        self, url: str, body: bytes, headers: Headers, timeout: float
    ) -> UpstreamResponse:
        limits = aiohttp.ClientTimeout(
            total=timeout, sock_connect=self.connect_timeout, sock_read=self.read_timeout
        )
        try:
            async with self.session.post(url, data=body, headers=headers, timeout=limits) as resp:
                data = await resp.read()
                return UpstreamResponse(resp.status, list(resp.raw_headers), data)
        except aiohttp.ConnectionTimeoutError as exc:
            raise UpstreamFailure("connect_error", f"connect timeout to {url}") from exc
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise UpstreamFailure("timeout", f"no answer from {url} in time") from exc
        except aiohttp.ClientConnectorError as exc:
            raise UpstreamFailure(
                "connect_error", f"cannot connect to {url}: {exc.os_error}"
            ) from exc
        except aiohttp.ClientError as exc:
            raise UpstreamFailure("protocol_error", f"{url}: {type(exc).__name__}") from exc

    async def aclose(self) -> None:
        await self.session.close()


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

    async def post(
        self, url: str, body: bytes, headers: Headers, timeout: float
    ) -> UpstreamResponse:
        limits = httpx.Timeout(min(self.read_timeout, timeout), connect=self.connect_timeout)
        try:
            async with asyncio.timeout(timeout):
                resp = await self.client.post(url, content=body, headers=headers, timeout=limits)
        except httpx.ConnectTimeout as exc:
            raise UpstreamFailure("connect_error", f"connect timeout to {url}") from exc
        except (httpx.TimeoutException, TimeoutError) as exc:
            raise UpstreamFailure("timeout", f"no answer from {url} in time") from exc
        except httpx.ConnectError as exc:
            raise UpstreamFailure("connect_error", f"cannot connect to {url}: {exc}") from exc
        except httpx.HTTPError as exc:
            raise UpstreamFailure("protocol_error", f"{url}: {type(exc).__name__}") from exc
        return UpstreamResponse(resp.status_code, list(resp.headers.raw), resp.content)

    async def aclose(self) -> None:
        await self.client.aclose()


def open_upstream(
    kind: str,
    *,
    connect_timeout: float,
    read_timeout: float,
    pool_size: int,
    transport: httpx.AsyncBaseTransport | None = None,
) -> Upstream:
    """The one place the forwarding client is chosen. Call inside the running event loop."""
    if kind == "httpx" or transport is not None:
        return HttpxUpstream(connect_timeout, read_timeout, pool_size, transport)
    return AiohttpUpstream(connect_timeout, read_timeout, pool_size)

"""X-Model-Version and X-Response-Time-Ms on every answer of a replica."""

from __future__ import annotations

import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from vocabulary.headers import MODEL_VERSION, RESPONSE_TIME_MS

MODEL_VERSION_HEADER = MODEL_VERSION.encode()
RESPONSE_TIME_HEADER = RESPONSE_TIME_MS.encode()


class VersionHeaders:
    """Pure ASGI middleware: X-Model-Version and X-Response-Time-Ms on every response."""

    def __init__(self, app: ASGIApp, version: str) -> None:
        self.app = app
        self.version = version.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                elapsed_ms = (time.perf_counter() - start) * 1000
                headers = list(message.get("headers", []))
                headers.append((MODEL_VERSION_HEADER, self.version))
                headers.append((RESPONSE_TIME_HEADER, f"{elapsed_ms:.2f}".encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)

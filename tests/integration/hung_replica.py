"""Replicas that pass /health but hold predictions: ``HungReplica`` never answers one (accepts,
reads, stays silent), ``HeldReplica`` answers every one it holds when the test releases them."""

from __future__ import annotations

import asyncio
import json
import threading


class HungReplica:
    def __init__(self, version: str) -> None:
        self.version = version
        self.port = 0
        self.predict_calls = 0
        self._loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> HungReplica:
        self._thread.start()
        if not self._started.wait(5):
            raise RuntimeError("hung replica did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self._started.set()
        self._loop.run_forever()
        server.close()
        pending = asyncio.all_tasks(self._loop)
        for task in pending:
            task.cancel()
        self._loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        self._loop.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                request_line = await reader.readline()
                if not request_line:
                    return
                length = 0
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                if length:
                    await reader.readexactly(length)
                if request_line.startswith(b"GET /health"):
                    body = json.dumps({"status": "healthy", "model_version": self.version})
                    writer.write(
                        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                        + f"content-length: {len(body)}\r\n\r\n{body}".encode()
                    )
                    await writer.drain()
                elif request_line.startswith(b"GET "):
                    # /metadata (the gateway asks once it is healthy): not a prediction.
                    writer.write(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n")
                    await writer.drain()
                else:
                    self.predict_calls += 1
                    await self._predict(writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            return
        finally:
            writer.close()

    async def _predict(self, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(3600)  # never answer


class HeldReplica(HungReplica):
    """Holds every prediction until ``release``, then answers each with a 200 (keep-alive).

    ``held`` counts the predictions waiting now: a test that sees it at N knows N requests are
    in flight, for as long as it does not release them.
    """

    ANSWER = {"predictions": [], "answered_by": "held replica"}

    def __init__(self, version: str) -> None:
        super().__init__(version)
        self.held = 0
        self._released = asyncio.Event()

    def release(self) -> None:
        self._loop.call_soon_threadsafe(self._released.set)

    async def _predict(self, writer: asyncio.StreamWriter) -> None:
        self.held += 1
        try:
            await self._released.wait()
        finally:
            self.held -= 1
        body = json.dumps(self.ANSWER)
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
            + f"content-length: {len(body)}\r\n\r\n{body}".encode()
        )
        await writer.drain()

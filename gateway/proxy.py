"""Forwarding: one client request → routing decision → a replica (retries, fallback) → tags.

``Proxy.forward`` takes the request's bytes and returns the answer's; the gateway's server
protocol (httpserver/short_cut.py, through gateway/server.py) calls it directly for plain
prediction requests, and the ASGI ``__call__`` serves the rest. Prediction bodies are never
parsed: they pass through as bytes.

Both front doors end here: /predict calls ``forward`` with no ``call``, the Open Inference
Protocol's door (gateway/v2_door.py) with a ``V2Call``. Routing, pools, fallback, shadow and the
log do not look at which: the one place a door shows is the version's lane (gateway/lanes.py),
asked only when the request is not a /predict to a model-API version, so /predict's path costs
one set lookup per version tried, and V2 errors take the protocol's form ``{"error": ...}``.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Awaitable, Callable

from starlette.types import Receive, Scope, Send

from gateway.admission import Admission
from gateway.errors import (
    BadPin,
    BadUpstream,
    BodyTooLarge,
    GatewayError,
    NoHealthyReplica,
    UpstreamFailure,
    UpstreamTimeout,
)
from gateway.lanes import V2Call, answer_header_length
from gateway.metrics import GatewayMetrics
from gateway.pool import AT_CAP, Replica
from gateway.routing import Decision, PinRejected
from gateway.shadow.mirror import Mirror
from gateway.state import GatewayState, Snapshot
from gateway.upstream import Upstream
from gateway.v2_door import V2Door
from gateway.wire import MODEL_VERSION_LINE, Headers, Message, lines_named
from httpserver.limits import RETRY_AFTER_S
from outcomes.records import Answered
from protocols.scores import ScoreSource
from vocabulary import headers as header_names

log = logging.getLogger("gateway.proxy")

# RFC 9110 hop-by-hop headers, plus those the proxy handles itself: host and content-length are
# recomputed, and expect is answered by our server (the whole body is read before forwarding, so a
# forwarded "Expect: 100-continue" would only draw an interim answer from the replica).
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"trailers",
        b"transfer-encoding",
        b"upgrade",
        b"expect",
        b"host",
        b"content-length",
    }
)
# Upstream response headers the gateway sets itself (date and server come from our server).
_OURS = (
    header_names.MODEL_VERSION,
    header_names.ROUTE_REASON,
    header_names.ROUTING_REVISION,
    header_names.FALLBACK_FROM,
    header_names.REQUEST_ID,
    header_names.RESPONSE_TIME_MS,
)
REPLACED = HOP_BY_HOP | {name.encode() for name in _OURS} | {b"date", b"server"}
# Lines of a replica's answer head that the gateway drops (it writes its own where needed).
REPLACED_LINES = lines_named(REPLACED)
TAGS = (
    f"{header_names.MODEL_VERSION}: %s\r\n{header_names.ROUTE_REASON}: %s\r\n"
    f"{header_names.ROUTING_REVISION}: %s\r\n{header_names.REQUEST_ID}: %s\r\n"
    "content-length: %d\r\n"
).encode()
ERROR_HEAD = (
    f"content-type: application/json\r\ncontent-length: %d\r\n"
    f"{header_names.ROUTING_REVISION}: %s\r\n{header_names.REQUEST_ID}: %s\r\n"
    f"{header_names.RESPONSE_TIME_MS}: %.2f\r\n"
).encode()
RETRY_AFTER = b"retry-after: %d\r\n" % RETRY_AFTER_S

# x-route-reason values, encoded once.
REASONS = {reason: reason.encode() for reason in header_names.ROUTE_REASONS}
REQUEST_ID = header_names.REQUEST_ID.encode()
FALLBACK_FROM = header_names.FALLBACK_FROM.encode()
RESPONSE_TIME_LINE = f"{header_names.RESPONSE_TIME_MS}: %.2f\r\n".encode()

# The version and variant bits of a UUID (RFC 9562), and their values for version 7.
UUID_FIXED_BITS = (0xF000 << 64) | (0xC000 << 48)
UUID_V7_BITS = (0x7000 << 64) | (0x8000 << 48)


class ClientGone(Exception):
    """The client disconnected before its request body arrived."""


class Proxy:
    """POST /predict and /predict/batch: ``forward`` (bytes in, answer out) and an ASGI entry."""

    def __init__(
        self,
        state: GatewayState,
        upstream: Upstream,
        metrics: GatewayMetrics,
        *,
        max_body_bytes: int,
        request_budget_s: float,
        mirror: Mirror | None = None,
        admission: Admission | None = None,
    ) -> None:
        self.state = state
        self.admission = admission if admission is not None else Admission(0.0)
        self.mirror = mirror
        self.upstream = upstream
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes
        self.request_budget_s = request_budget_s
        self.answered = metrics.answered
        # The prediction log's writer (gateway/prediction_log.py), when it is on: each answer a
        # client gets, as raw bytes; the request body too when features are logged.
        self.record: Callable[[Answered], None] | None = None
        self.log_features = False
        # The replica host lookups (gateway/dns.py): told of a member that could not be
        # connected to, so an address that left is looked up again at once.
        self.connect_failed: Callable[[Replica], None] | None = None
        # The Open Inference Protocol's door, which hands its requests to ``forward``.
        self.v2 = V2Door(self)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The ASGI entry (tests, and requests the server does not short-circuit)."""
        await self.serve(scope, receive, send, self.forward)

    async def serve(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        forward: Callable[[str, Headers, bytes, float], Awaitable[Message]],
        *,
        v2: bool = False,
    ) -> None:
        """One request on the ASGI path: its body read within the limit, then ``forward``
        (/predict's, or the V2 door's: ``v2`` errors take the protocol's form)."""
        start = time.perf_counter()
        headers = scope["headers"]
        try:
            if declared_length(headers) > self.max_body_bytes:
                raise self._too_large()
            body = await self._read_body(receive)
        except BodyTooLarge as exc:
            snap = self.state.snapshot
            answer = self.error_answer(exc, snap, request_id_of(headers), start, v2=v2)
        except ClientGone:
            return  # nobody is left to answer; nothing was forwarded
        else:
            answer = await forward(target_of(scope), headers, body, start)
        start_message = {"type": "http.response.start", "status": answer.status}
        await send({**start_message, "headers": answer.headers})
        await send({"type": "http.response.body", "body": answer.body})

    async def forward(
        self, path: str, headers: Headers, body: bytes, start: float, call: V2Call | None = None
    ) -> Message:
        """One whole client request (lower-case header names, raw bytes) → the tagged answer,
        its head ready for the wire (content-length included).

        ``start`` is the ``time.perf_counter()`` of the request's arrival; ``call`` is the V2
        door's request (None: /predict or /predict/batch, ``path``).
        """
        snap = self.state.snapshot  # this request finishes on this config, whatever reloads
        flight = snap.flight
        flight.count += 1  # until it is counted: gateway/settling.py
        try:
            return await self._forward(snap, path, headers, body, start, call)
        finally:
            flight.count -= 1

    async def _forward(
        self,
        snap: Snapshot,
        path: str,
        headers: Headers,
        body: bytes,
        start: float,
        call: V2Call | None,
    ) -> Message:
        pin_header = snap.pin_header
        sticky_header = snap.sticky_header
        request_id = b""
        pin = sticky = None
        # Forwarded as the server gave them: no decoding on the way.
        forward: Headers = []
        for header in headers:
            name = header[0]
            if name == sticky_header:
                sticky = header[1]
            elif name == pin_header:
                pin = header[1].decode("latin-1")
            if name in HOP_BY_HOP:
                continue
            forward.append(header)
            if name == REQUEST_ID:
                request_id = header[1]
        if not request_id:
            # A V2 request's ``id`` is its request id (the door checked it fits a header).
            made = call.request_id if call is not None else None
            request_id = made or new_request_id()
            forward.append((REQUEST_ID, request_id))

        try:
            if len(body) > self.max_body_bytes:
                raise self._too_large()
            version, reason, fallback_from, resp, source = await self._route(
                snap, path, body, forward, pin, sticky, call
            )
        except GatewayError as exc:
            return self.error_answer(exc, snap, request_id, start, v2=call is not None)

        head = REPLACED_LINES.sub(b"", b"\n" + resp.head)[1:] if resp.head else b""
        tags = TAGS % (version.encode(), REASONS[reason], snap.revision, request_id, len(resp.body))
        if fallback_from is not None:
            tags += FALLBACK_FROM + b": " + fallback_from.encode() + b"\r\n"
        elapsed = time.perf_counter() - start
        tags += RESPONSE_TIME_LINE % (elapsed * 1000)
        self.answered.record(version, reason, resp.status, elapsed)
        logged = None
        plan = snap.shadow
        mirrored = plan is not None and resp.status == 200 and self.mirror is not None
        # Where the client's answer holds its score: None for the model API (/predict's).
        header_length = None
        if source is not None and (mirrored or self.record is not None):
            header_length = answer_header_length(resp.head)
        if self.record is not None and resp.status == 200:
            logged = Answered(
                time.time(),
                request_id,
                sticky,
                version,
                reason,
                snap.revision,
                resp.body,
                body if self.log_features else None,
                source,
                header_length,
                call.header_length if call is not None else None,
            )
            self.record(logged)
        if mirrored:
            assert plan is not None and self.mirror is not None  # for mypy: mirrored says so
            shadow = plan.version
            lane = None if call is None and shadow in snap.passthrough else snap.lanes[shadow]
            # Queued, not awaited: the copy runs once this answer has been written.
            self.mirror.offer(
                plan,
                snap.pool,
                version,
                path,
                body,
                forward,
                sticky,
                request_id,
                resp.body,
                elapsed,
                logged=logged,
                lane=lane,
                call=call,
                client_source=source,
                client_header_length=header_length,
                flight=snap.flight,
            )
        return Message(resp.status, head + tags, resp.body)

    async def _route(
        self,
        snap: Snapshot,
        path: str,
        body: bytes,
        headers: Headers,
        pin: str | None,
        sticky: bytes | None,
        call: V2Call | None,
    ) -> tuple[str, str, str | None, Message, ScoreSource | None]:
        """Decide, try the chosen version's replicas, fall back to stable; (version, reason,
        the version fallen back from, the answer, where it holds the score: None when it is
        a model-API answer)."""
        try:
            if call is not None and call.pin is not None:
                decision = path_pin(snap, call.pin)
            else:
                decision = snap.table.decide(
                    pin=pin, sticky_key=sticky, roll=random.random(), healthy=snap.pool.has_healthy
                )
        except PinRejected as exc:
            raise BadPin(str(exc), version=exc.asked) from None
        now = time.monotonic()  # the event loop's clock too
        deadline = now + self.request_budget_s
        # One wait for room per request, shared by the chosen version and a fallback to stable.
        wait_until = min(deadline, now + self.admission.wait_s)
        stable = snap.table.stable

        if decision.fallback_from is not None:
            # Routing already saw the chosen version has no healthy replica.
            cause = "no_healthy_replica"
            self.metrics.fallbacks.labels(decision.fallback_from, stable, cause).inc()
        failures: list[UpstreamFailure] = []
        served = await self._try_version(
            snap, decision.version, path, body, headers, deadline, wait_until, failures, call
        )
        if served is not None:
            replica, resp, source = served
            version = replica_version(snap, replica, resp)
            return version, decision.reason, decision.fallback_from, resp, source

        if decision.reason == "pinned" or decision.version == stable:
            pinned = decision.reason == "pinned"
            raise self._exhausted(snap, decision.version, failures, pinned=pinned)
        # Every replica of the chosen version failed this request: stable serves it instead.
        cause = failures[-1].cause if failures else "no_healthy_replica"
        self.metrics.fallbacks.labels(decision.version, stable, cause).inc()
        stable_failures: list[UpstreamFailure] = []
        served = await self._try_version(
            snap, stable, path, body, headers, deadline, wait_until, stable_failures, call
        )
        if served is None:
            raise self._exhausted(
                snap, stable, stable_failures, pinned=False, after=decision.version
            )
        replica, resp, source = served
        return replica_version(snap, replica, resp), "fallback", decision.version, resp, source

    async def _try_version(
        self,
        snap: Snapshot,
        version: str,
        path: str,
        body: bytes,
        headers: Headers,
        deadline: float,
        wait_until: float,
        failures: list[UpstreamFailure],
        call: V2Call | None,
    ) -> tuple[Replica, Message, ScoreSource | None] | None:
        """Each healthy replica of ``version`` at most once, until one answers below 500. When
        every healthy one is at its in-flight cap, the first try waits for room until
        ``wait_until`` (gateway/admission.py). The request takes the form the version's lane
        gives it (once, whichever replica takes it), unless it is a /predict to a model-API
        version, which goes as it came."""
        pool = snap.pool
        tried: list[Replica] = []
        reply = source = None
        if call is not None or version not in snap.passthrough:
            prepared = snap.lanes[version].prepare(path, body, headers, call)
            path, body, headers = prepared.path, prepared.body, prepared.headers
            reply, source = prepared.reply, prepared.client_source
        while True:
            replica = pool.choose(version, tried)
            if replica is not None:
                replica.inflight += 1
            elif tried or not pool.has_healthy(version):
                return None
            else:
                replica = await self.admission.wait(version, wait_until)
                if replica is None:
                    return None  # shed: _exhausted names the cap
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.admission.release(replica)
                failures.append(UpstreamFailure("timeout", "request time budget spent"))
                return None
            tried.append(replica)
            sent = time.perf_counter() if reply is not None else 0.0
            resp = await self._try_replica(snap, replica, path, body, headers, remaining, failures)
            if resp is None:
                continue
            if reply is not None and resp.status == 200:
                try:
                    resp, served = reply(resp, time.perf_counter() - sent)
                except UpstreamFailure as failure:  # an answer that cannot be read back
                    self._count_failure(snap, replica, failure)
                    failures.append(failure)
                    continue
                if served is not None:
                    # The client's answer only (a shadow copy goes through no reply): this
                    # version's prediction histogram, as a V2 server exports none.
                    self.metrics.served.record(version, served)
            return replica, resp, source

    async def _try_replica(
        self,
        snap: Snapshot,
        replica: Replica,
        path: str,
        body: bytes,
        headers: Headers,
        remaining: float,
        failures: list[UpstreamFailure],
    ) -> Message | None:
        """One try on one replica, its in-flight count already holding it, within ``remaining``
        seconds: its answer below 500, or None with the failure recorded."""
        try:
            resp = await self.upstream.post(replica.address + path, body, headers, remaining)
        except UpstreamFailure as failure:
            self._count_failure(snap, replica, failure)
            failures.append(failure)
            return None
        finally:
            self.admission.release(replica)
        if resp.status >= 500 or resp.status < 100:
            # Predictions are idempotent, so a 5xx is retried elsewhere; a 4xx is the client's
            # answer and passes through unchanged. A status below 100 is no HTTP answer at all.
            cause = "status_5xx" if resp.status >= 500 else "protocol_error"
            answered = UpstreamFailure(cause, f"{replica.url} answered status {resp.status}")
            self._count_failure(snap, replica, answered)
            failures.append(answered)
            return None
        if replica.consecutive_failures or replica.ejections:
            snap.pool.record_success(replica)
        return resp

    def _count_failure(self, snap: Snapshot, replica: Replica, failure: UpstreamFailure) -> None:
        self.metrics.upstream_errors.labels(replica.version, replica.url, failure.cause).inc()
        if failure.cause == "connect_error" and self.connect_failed is not None:
            self.connect_failed(replica)
        if snap.pool.record_failure(replica, failure.detail):
            self.metrics.ejections.labels(replica.version, replica.url).inc()
            log.warning("ejected %s (%s): %s", replica.url, replica.version, failure.detail)

    def _exhausted(
        self,
        snap: Snapshot,
        version: str,
        failures: list[UpstreamFailure],
        *,
        pinned: bool,
        after: str | None = None,
    ) -> GatewayError:
        """The gateway error for a version that could not serve, naming it and why."""
        prefix = f"{after} failed and stable " if after else ("pinned " if pinned else "")
        if not failures:
            reasons = snap.pool.unavailable(version)
            counts = ", ".join(f"{n} {reason}" for reason, n in sorted(reasons.items()))
            if AT_CAP in reasons:
                self.metrics.clients.count_shed(version)
            if reasons and set(reasons) == {"starting"}:
                # Distinct from a failing version: nothing is wrong yet, it is not up yet.
                detail = f"{prefix}version {version} has no ready replica yet ({counts})"
            else:
                detail = (
                    f"{prefix}version {version} has no healthy replica with room for a request"
                    + (f" ({counts})" if counts else "")
                )
                contract = snap.pool.contract_reason(version)
                detail += f": {contract}" if contract else ""
            return NoHealthyReplica(detail, version=version)
        last = failures[-1]
        detail = f"{prefix}version {version}: every replica tried failed; last: {last.detail}"
        if last.cause == "timeout":
            return UpstreamTimeout(detail, version=version)
        if last.cause == "connect_error":
            return NoHealthyReplica(detail, version=version)
        return BadUpstream(detail, version=version)

    def _too_large(self) -> BodyTooLarge:
        return BodyTooLarge(f"request body exceeds {self.max_body_bytes} bytes")

    async def _read_body(self, receive: Receive) -> bytes:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ClientGone()
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                raise self._too_large()
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks) if len(chunks) != 1 else chunks[0]

    def error_answer(
        self,
        exc: GatewayError,
        snap: Snapshot,
        request_id: bytes,
        start: float,
        *,
        v2: bool = False,
    ) -> Message:
        """The answer to a request the gateway could not serve, tagged and counted; ``v2``: in
        the Open Inference Protocol's form, ``{"error": "..."}`` (what its clients read)."""
        body = exc.v2_body() if v2 else exc.body()
        elapsed = time.perf_counter() - start
        request_id = request_id or new_request_id()
        head = ERROR_HEAD % (len(body), snap.revision, request_id, elapsed * 1000)
        if exc.status == 503:  # shed, or no replica up: worth a retry soon, not at once
            head += RETRY_AFTER
        # A bad pin's version is the client's text: never a label.
        version = exc.version if exc.version in snap.versions else "none"
        self.answered.record(version, exc.error, exc.status, elapsed)
        return Message(exc.status, head, body)


def path_pin(snap: Snapshot, version: str) -> Decision:
    """/v2/models/{model}/versions/{version}/infer: a pin, by the pin header's rules (the allow
    list; never a fallback). Without a ``pinning`` section nothing may be pinned, by the path
    either: the version is named in the error, with the ones that may be."""
    allowed = snap.table.pin_allowed
    if allowed is None or version not in allowed:
        raise PinRejected(version, snap.table.pin_allowed_sorted)
    return Decision(version, "pinned")


def target_of(scope: Scope) -> str:
    """The request target to forward: the path as the client sent it, and its query string."""
    raw = scope.get("raw_path")
    path = raw.decode("latin-1") if raw else scope["path"]
    query = scope.get("query_string")
    return f"{path}?{query.decode('latin-1')}" if query else path


def declared_length(headers: Headers) -> int:
    """The request's Content-Length, 0 when absent or not a number."""
    for name, value in headers:
        if name == b"content-length":
            return int(value) if value.isdigit() else 0
    return 0


def request_id_of(headers: Headers) -> bytes:
    for name, value in headers:
        if name == REQUEST_ID:
            return value
    return b""


def new_request_id() -> bytes:
    """A version 7 UUID (RFC 9562) as 32 hex digits: Unix milliseconds, then 74 random bits.

    Time-ordered: the prediction log's index on request ids then grows at its end rather than
    at random places (random keys made that index most of the log's write cost), and ids sort
    by when they were made. Built from ``random.getrandbits``: an id to correlate logs needs
    uniqueness, not secrecy, and a UUID object (or an os.urandom call) per request showed in
    profiles.
    """
    value = (time.time_ns() // 1_000_000) << 80 | random.getrandbits(80)
    return b"%032x" % (value & ~UUID_FIXED_BITS | UUID_V7_BITS)


def replica_version(snap: Snapshot, replica: Replica, resp: Message) -> str:
    """The version that actually served: the model's own header when it names a configured
    version, else the replica's pin (a replica's header must not make up a version, or a
    metric series)."""
    found = MODEL_VERSION_LINE.search(b"\n" + resp.head)
    if found is None:
        return replica.version
    reported = found[1].decode("latin-1")
    return reported if reported in snap.versions else replica.version

"""How to reach the Kubernetes API server: its address, the service account's token and CA.

In a pod (the default) the address is ``KUBERNETES_SERVICE_HOST``:``KUBERNETES_SERVICE_PORT``
over TLS, verified with the service account's CA, authenticated with its token. The token is a
projected one that the kubelet rotates (hourly by default), so it is read again from its file
every ``TOKEN_REFRESH_S``, never cached for the life of the process.

``STREAMFLOW_KUBE_API`` overrides the address (the tests point it at a stand-in on 127.0.0.1
over plain http), ``STREAMFLOW_KUBE_TOKEN_FILE`` the token's file. This module builds httpx
clients and says what an API error means; the calls themselves are the stores'.
"""

from __future__ import annotations

import os
import ssl
import threading
import time
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx

__all__ = [
    "KUBE_API_ENV",
    "KUBE_TOKEN_FILE_ENV",
    "SERVICE_ACCOUNT_DIR",
    "KubeConnection",
    "KubeUnavailable",
    "status_message",
]

KUBE_API_ENV = "STREAMFLOW_KUBE_API"
KUBE_TOKEN_FILE_ENV = "STREAMFLOW_KUBE_TOKEN_FILE"
SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
TOKEN_REFRESH_S = 60.0
CONNECT_TIMEOUT_S = 5.0
REQUEST_TIMEOUT_S = 10.0


class KubeUnavailable(Exception):
    """No API server is configured here (not in a pod, and no ``STREAMFLOW_KUBE_API``)."""


class TokenAuth(httpx.Auth):
    """A bearer token read from its file, and read again once it is ``TOKEN_REFRESH_S`` old."""

    def __init__(self, path: Path, clock: Callable[[], float] = time.monotonic) -> None:
        self.path = path
        self.clock = clock
        self._token = ""
        self._read_at = -TOKEN_REFRESH_S
        self._lock = threading.Lock()

    def token(self) -> str:
        with self._lock:
            now = self.clock()
            if now - self._read_at >= TOKEN_REFRESH_S:
                try:
                    self._token = self.path.read_text().strip()
                    self._read_at = now
                except OSError:
                    pass  # keep the last one; the API server says 401 if it is no good
            return self._token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        token = self.token()
        if token:
            request.headers["Authorization"] = f"Bearer {token}"
        yield request


@dataclass(frozen=True, eq=False)
class KubeConnection:
    base_url: str
    token_file: Path | None
    ca_file: Path | None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> KubeConnection:
        token_file = environ.get(KUBE_TOKEN_FILE_ENV)
        token = Path(token_file) if token_file else SERVICE_ACCOUNT_DIR / "token"
        ca = SERVICE_ACCOUNT_DIR / "ca.crt"
        override = environ.get(KUBE_API_ENV)
        if override:
            return cls(override.rstrip("/"), token if token.exists() else None, ca)
        host = environ.get("KUBERNETES_SERVICE_HOST")
        port = environ.get("KUBERNETES_SERVICE_PORT", "443")
        if not host:
            raise KubeUnavailable(
                "no Kubernetes API server: KUBERNETES_SERVICE_HOST is unset (not in a pod); "
                f"set {KUBE_API_ENV} to the API server's URL"
            )
        host = f"[{host}]" if ":" in host else host  # an IPv6 service address
        return cls(f"https://{host}:{port}", token, ca)

    def _verify(self) -> ssl.SSLContext | bool:
        if not self.base_url.startswith("https:"):
            return True
        if self.ca_file is not None and self.ca_file.exists():
            return ssl.create_default_context(cafile=str(self.ca_file))
        return True  # the system's CAs (an API server with a public certificate)

    def _auth(self) -> httpx.Auth | None:
        return TokenAuth(self.token_file) if self.token_file is not None else None

    def client(self, transport: httpx.BaseTransport | None = None) -> httpx.Client:
        return httpx.Client(
            base_url=self.base_url,
            auth=self._auth(),
            verify=self._verify(),
            transport=transport,
            timeout=httpx.Timeout(REQUEST_TIMEOUT_S, connect=CONNECT_TIMEOUT_S),
        )

    def async_client(self, transport: httpx.AsyncBaseTransport | None = None) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.base_url,
            auth=self._auth(),
            verify=self._verify(),
            transport=transport,
            timeout=httpx.Timeout(REQUEST_TIMEOUT_S, connect=CONNECT_TIMEOUT_S),
        )


def status_message(response: httpx.Response) -> str:
    """An API error in a line: the HTTP status and the ``Status`` object's message."""
    detail = ""
    try:
        body = response.json()
        if isinstance(body, dict):
            detail = str(body.get("message") or body.get("reason") or "")
    except ValueError:
        detail = response.text[:200]
    return f"HTTP {response.status_code}" + (f": {detail}" if detail else "")

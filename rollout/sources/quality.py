"""Model quality on outcomes, as the controller reads it: a gateway's GET /quality.

The controller never opens the prediction log itself (an import contract says so): the
gateway that records the predictions and takes the outcomes reports on them. Gateways that
share one log (PostgreSQL) give the same report; the first one that answers is asked.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import httpx

from rollout.sources.base import SourceError

__all__ = ["GatewayQuality", "QualitySource"]


class QualitySource(Protocol):
    def report(self, *, stable: str, candidate: str, since: float) -> dict[str, Any]:
        """GET /quality's report on predictions made since ``since`` (Unix seconds). Raises
        SourceError when no gateway can give one."""

    def describe(self) -> str: ...


class GatewayQuality:
    def __init__(self, gateways: Sequence[str], client: httpx.Client) -> None:
        self.gateways = [url.rstrip("/") for url in gateways]
        self.client = client

    def describe(self) -> str:
        return f"GET /quality of {', '.join(self.gateways)}"

    def report(self, *, stable: str, candidate: str, since: float) -> dict[str, Any]:
        params = {"stable": stable, "candidate": candidate, "since": f"{since:.3f}"}
        problems = []
        for gateway in self.gateways:
            try:
                response = self.client.get(f"{gateway}/quality", params=params, timeout=60.0)
            except httpx.HTTPError as exc:
                problems.append(f"{gateway}: {exc}")
                continue
            if response.status_code != 200:
                try:
                    detail = response.json().get("detail", "")
                except ValueError:
                    detail = ""
                problems.append(f"{gateway}/quality: HTTP {response.status_code} {detail}".strip())
                continue
            try:
                body = response.json()
            except ValueError:
                problems.append(f"{gateway}/quality: not JSON")
                continue
            if isinstance(body, dict):
                return body
            problems.append(f"{gateway}/quality: not a JSON object")
        raise SourceError("; ".join(problems) or "no gateway given")

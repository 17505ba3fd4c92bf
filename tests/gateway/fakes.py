"""Shared routing samples and fake replicas (httpx.MockTransport handlers) for gateway tests."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from gateway.settings import GatewaySettings
from gateway.upstream import HttpxUpstream

# The example from DESIGN.md, verbatim (comments included).
DESIGN_EXAMPLE = """\
service: streamflow-churn
stable: v2.3.1                    # the version everything falls back to
mode: canary                      # canary | blue_green
versions:                         # every version and the replicas pinned to it
  v2.3.1:
    replicas: [http://model-v2-3-1-a:8000, http://model-v2-3-1-b:8000]
  v2.4.0:
    replicas: [http://model-v2-4-0-a:8000]
canary:                           # used when mode: canary
  weights: {v2.3.1: 95, v2.4.0: 5}   # percent; must sum to 100; 0 means 0
  sticky_header: X-Customer-Id       # optional: the same key always gets the same version
blue_green:                       # used when mode: blue_green
  blue: v2.3.1
  green: v2.4.0
  live: blue                      # flip to green: every new request goes to green at once
shadow:                           # optional: mirror a share of live traffic, compare, never return
  version: v2.4.0
  percent: 10
pinning:                          # optional: clients may ask for a version with this header
  header: X-Model-Version
  allow: [v2.3.1, v2.4.0]
"""

ROUTING = """\
service: streamflow-churn
stable: v2.3.1
mode: {mode}
versions:
  v2.3.1:
    replicas: [http://stable-a:8000, http://stable-b:8000]
  v2.4.0:
    replicas: [http://canary-a:8000]
canary:
  weights: {{v2.3.1: {stable_weight}, v2.4.0: {canary_weight}}}
  sticky_header: X-Customer-Id
blue_green: {{blue: v2.3.1, green: v2.4.0, live: {live}}}
pinning: {{header: X-Model-Version, allow: [v2.3.1, v2.4.0]}}
"""

RESOLVE = {
    "stable-a:8000": "10.0.0.1:1",
    "stable-b:8000": "10.0.0.2:1",
    "canary-a:8000": "10.0.0.3:1",
}
VERSION_OF = {"10.0.0.1:1": "v2.3.1", "10.0.0.2:1": "v2.3.1", "10.0.0.3:1": "v2.4.0"}


def write_routing(
    path: Path,
    *,
    mode: str = "canary",
    stable_weight: int = 90,
    canary_weight: int = 10,
    live: str = "blue",
) -> Path:
    path.write_text(
        ROUTING.format(
            mode=mode, stable_weight=stable_weight, canary_weight=canary_weight, live=live
        )
    )
    return path


def settings_for(routing: Path, **overrides: object) -> GatewaySettings:
    values: dict[str, object] = {
        "routing_file": routing,
        "resolve": RESOLVE,
        "transport": "httpx",
        "health_interval_s": 30.0,  # tests drive health by hand; no surprise rounds
        "reload_interval_s": 30.0,
    }
    values.update(overrides)
    return GatewaySettings(**values)


@dataclass
class FakeReplicas:
    """Each address answers like a model server of its version unless told otherwise."""

    behaviour: dict[str, str] = field(default_factory=dict)  # address -> ok|down|500|422|slow
    # When set, every prediction answers this status, and this X-Model-Version (misbehaving
    # replicas: any 3-digit status, a version nobody configured).
    status: int | None = None
    answer_version: str | None = None
    reported: dict[str, str] = field(default_factory=dict)  # address -> version /health reports
    calls: Counter[str] = field(default_factory=Counter)
    seen_headers: list[httpx.Headers] = field(default_factory=list)
    seen_targets: list[str] = field(default_factory=list)  # path and query of each prediction

    def address(self, request: httpx.URL) -> str:
        return f"{request.host}:{request.port}"

    def predict(self, request: httpx.Request) -> httpx.Response:
        address = self.address(request.url)
        self.calls[address] += 1
        self.seen_headers.append(request.headers)
        self.seen_targets.append(request.url.raw_path.decode())
        mode = self.behaviour.get(address, "ok")
        version = VERSION_OF[address]
        if mode == "down":
            raise httpx.ConnectError("connection refused", request=request)
        if mode == "slow":
            raise httpx.ReadTimeout("timed out", request=request)
        if mode == "500":
            return httpx.Response(500, json={"error": "boom"})
        if mode == "422":
            return httpx.Response(422, json={"detail": [{"loc": ["body", "tenure"]}]})
        body = {"model_version": version, "echo": json.loads(request.content or b"{}")}
        return httpx.Response(
            self.status or 200,
            json=body,
            headers={
                "X-Model-Version": self.answer_version or version,
                "X-Custom": "kept",
                "Keep-Alive": "timeout=5",
                "Connection": "keep-alive",
            },
        )

    def health(self, request: httpx.Request) -> httpx.Response:
        address = self.address(request.url)
        if self.behaviour.get(address) == "down":
            raise httpx.ConnectError("connection refused", request=request)
        version = self.reported.get(address, VERSION_OF[address])
        return httpx.Response(200, json={"status": "healthy", "model_version": version})

    def transports(self) -> dict[str, Any]:
        """create_app's keywords: forwarding and health checks both meet these fakes."""
        predict = httpx.MockTransport(self.predict)
        return {
            "upstream": lambda: HttpxUpstream(1.0, 10.0, 16, transport=predict),
            "health_transport": httpx.MockTransport(self.health),
        }

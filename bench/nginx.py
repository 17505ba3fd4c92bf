"""One nginx for the whole run: the trivial backends and the peer proxy in front of each pool.

The peer does what the gateway does, the nginx way: ``split_clients`` over the same versions
with the same weights, keyed by the sticky header (a random key when it is absent), keep-alive
pools per version, retry on the next replica on error, and a response tag.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from model_server.features import FEATURE_ORDER


@dataclass(frozen=True)
class Backend:
    """One trivial replica: answers the model API with a fixed body for ``version``."""

    version: str
    port: int


@dataclass(frozen=True)
class Peer:
    """The nginx counterpart of one gateway: listens on ``port``, splits over ``pools``."""

    name: str
    port: int
    pools: Mapping[str, Sequence[str]]  # version -> ["127.0.0.1:port", ...]
    weights: Mapping[str, int]
    sticky_header: str | None
    revision: str


def fixed_prediction(version: str) -> dict[str, object]:
    """What the trivial backend answers: a real-looking prediction of the same size."""
    return {
        "churn_probability": 0.7312,
        "risk_tier": "high",
        "top_reasons": [
            {
                "feature": name,
                "value": value,
                "shap_contribution": shap,
                "direction": "increases_risk",
            }
            for name, value, shap in zip(
                FEATURE_ORDER[:3], (14.0, 89.5, 1253.0), (0.9, 0.4, 0.2), strict=True
            )
        ],
        "model_version": version,
    }


def _quote(text: str) -> str:
    # nginx single-quoted string: only the quote and backslash need escaping.
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _ident(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", text)


def render_config(
    tmp: Path, backends: Sequence[Backend], peers: Sequence[Peer], workers: int | str = "auto"
) -> str:
    lines = [
        f"worker_processes {workers};",
        "daemon off;",
        f"pid {tmp / 'nginx.pid'};",
        f"error_log {tmp / 'nginx-error.log'} warn;",
        "events { worker_connections 4096; }",
        "http {",
        "  access_log off;",
        "  server_tokens off;",
        "  default_type application/json;",
        "  keepalive_requests 1000000;",
        "  keepalive_timeout 75s;",
    ]
    for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        lines.append(f"  {kind}_temp_path {tmp / ('nginx-' + kind)};")
    for backend in backends:
        health = json.dumps({"status": "healthy", "model_version": backend.version})
        body = json.dumps(fixed_prediction(backend.version), separators=(",", ":"))
        lines += [
            "  server {",
            f"    listen 127.0.0.1:{backend.port};",
            f"    location = /health {{ return 200 {_quote(health)}; }}",
            f"    location = /ready {{ return 200 {_quote(health)}; }}",
            "    location / {",
            f"      add_header X-Model-Version {backend.version};",
            f"      return 200 {_quote(body)};",
            "    }",
            "  }",
        ]
    for peer in peers:
        lines += _render_peer(peer)
    lines.append("}")
    return "\n".join(lines) + "\n"


def _render_peer(peer: Peer) -> list[str]:
    lines: list[str] = []
    upstream = {version: f"{peer.name}_{_ident(version)}" for version in peer.pools}
    for version, addresses in peer.pools.items():
        lines.append(f"  upstream {upstream[version]} {{")
        lines += [f"    server {address} max_fails=3 fail_timeout=5s;" for address in addresses]
        lines += ["    keepalive 128;", "  }"]
    key = f"${peer.name}_key"
    if peer.sticky_header:
        header = "$http_" + peer.sticky_header.lower().replace("-", "_")
        lines += [f"  map {header} {key} {{", '    "" $request_id;']
        lines += [f"    default {header};", "  }"]
    else:
        lines.append(f"  map $request_id {key} {{ default $request_id; }}")
    chosen = [(v, w) for v, w in sorted(peer.weights.items()) if w > 0]
    lines.append(f'  split_clients "{key}" ${peer.name}_pool {{')
    for version, weight in chosen[:-1]:
        lines.append(f"    {weight}% {upstream[version]};")
    lines.append(f"    * {upstream[chosen[-1][0]]};")
    lines += [
        "  }",
        "  server {",
        f"    listen 127.0.0.1:{peer.port};",
        "    location / {",
        f"      proxy_pass http://${peer.name}_pool;",
        "      proxy_http_version 1.1;",
        '      proxy_set_header Connection "";',
        "      proxy_next_upstream error timeout http_502 http_503 http_504;",
        f"      add_header X-Routing-Revision {peer.revision};",
        "    }",
        "  }",
    ]
    return lines


def nginx_argv(nginx: str, tmp: Path, conf: Path) -> list[str]:
    # -e: the compiled-in error log path may not be writable; -p: relative paths stay in tmp.
    return [nginx, "-p", str(tmp), "-e", str(tmp / "nginx-error.log"), "-c", str(conf)]

"""``streamflow status``: a running gateway's routing and replica health, from GET /routing."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any

import httpx

from cli.base import CommandError, Commands
from cli.client import STATUS_TIMEOUT_S, fetch_json
from cli.text import table, text

__all__ = ["fetch_routing", "format_status", "format_verdict", "register"]


def register(commands: Commands) -> None:
    sub = commands.add(
        "status",
        run,
        "show a running gateway's routing and replicas",
        "Ask a running gateway (GET /routing) for its active config, last reload error, shadow "
        "state and the health of each replica.",
    )
    commands.add_url_option(sub)


def run(args: argparse.Namespace) -> int:
    routing = fetch_routing(args.url)
    try:
        stats: Mapping[str, Any] = fetch_json(args.url, "/stats")
    except CommandError:  # an older gateway, or /stats failing: the routing still stands
        stats = {}
    for line in [*format_verdict(stats), *format_status(routing)]:
        print(line)
    return 0


def format_verdict(stats: Mapping[str, Any]) -> list[str]:
    """The status page's first line, the gateway's own words (GET /stats ``verdict``)."""
    verdict = stats.get("verdict")
    if not isinstance(verdict, Mapping) or not isinstance(verdict.get("text"), str):
        return []
    return [verdict["text"], ""]


def fetch_routing(
    url: str, *, transport: httpx.BaseTransport | None = None, timeout: float = STATUS_TIMEOUT_S
) -> dict[str, Any]:
    """GET ``<url>/routing``; every failure becomes a one-line CommandError."""
    return fetch_json(url, "/routing", transport=transport, timeout=timeout)


def format_status(data: Mapping[str, Any]) -> list[str]:
    """The /routing document as a few labelled lines and a replica table.

    Every key is optional: a gateway of another version may send more or fewer.
    """
    mode = data.get("mode")
    revision = text(data.get("revision"))
    loaded_at = data.get("loaded_at")
    fields: list[tuple[str, str]] = [
        ("service", text(data.get("service"))),
        ("mode", text(mode)),
        ("stable", text(data.get("stable"))),
        ("revision", revision + (f" (loaded {loaded_at})" if loaded_at else "")),
    ]
    error = data.get("last_reload_error")
    error_messages: list[str] = []
    if isinstance(error, Mapping):
        fields.append(
            ("reload", f"FAILED at {text(error.get('at'))}; still serving revision {revision}")
        )
        messages = error.get("messages")
        error_messages = [str(m) for m in messages] if isinstance(messages, list) else []
    else:
        fields.append(("reload", "ok"))

    blue_green = data.get("blue_green")
    weights = data.get("weights")
    if mode == "blue_green" and isinstance(blue_green, Mapping):
        live = blue_green.get("live")
        others = ", ".join(f"{c} = {text(blue_green.get(c))}" for c in ("blue", "green"))
        fields.append(("live", f"{text(live)} ({text(blue_green.get(live))}); {others}"))
    elif isinstance(weights, Mapping):
        shares = ", ".join(f"{name} {weight}%" for name, weight in weights.items())
        fields.append(("weights", shares or "(none)"))
    sticky = data.get("sticky_header")
    if sticky:
        fields.append(("sticky", f"by header {sticky}"))
    fields.append(("shadow", _shadow_label(data.get("shadow"))))
    pinning = data.get("pinning")
    if isinstance(pinning, Mapping):
        allowed = pinning.get("allow")
        allow = ", ".join(map(str, allowed)) if isinstance(allowed, list) else text(allowed)
        fields.append(("pinning", f"header {text(pinning.get('header'))}, allows {allow}"))

    offline = data.get("offline_quality")
    if isinstance(offline, Mapping) and isinstance(offline.get("versions"), Mapping):
        fields.append(("offline", _offline_label(offline["versions"])))
        if offline.get("warning"):
            fields.append(("WARNING", str(offline["warning"])))

    contract = data.get("input_contract")
    if isinstance(contract, Mapping) and isinstance(contract.get("versions"), Mapping):
        fields += _contract_fields(contract["versions"])

    width = max(len(label) for label, _ in fields)
    lines = []
    for label, value in fields:
        lines.append(f"{label:<{width}}  {value}")
        if label == "reload":
            lines += [f"{'':<{width}}    {message}" for message in error_messages]
    lines.append("")
    lines += _replica_table(data.get("replicas"))
    return lines


def _offline_label(versions: Mapping[str, Any]) -> str:
    """Each version's holdout AUC and training data, from its replicas' /metadata."""
    said = []
    for version, facts in versions.items():
        if not isinstance(facts, Mapping) or facts.get("holdout_auc") is None:
            said.append(f"{version} unknown")
            continue
        data = text(facts.get("dataset_id"))
        said.append(f"{version} holdout AUC {facts['holdout_auc']:.4f} (data {data})")
    return "; ".join(said) or "-"


def _contract_fields(versions: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Each version's standing against the stable version's V2 inputs; one line per version
    that differs (it gets no traffic)."""
    standing = {v: s for v, s in versions.items() if isinstance(s, Mapping)}
    fields = [("inputs", "; ".join(f"{v} {text(s.get('status'))}" for v, s in standing.items()))]
    fields += [
        ("WARNING", f"{text(s.get('reason'))} ({v} gets no traffic)")
        for v, s in standing.items()
        if s.get("status") == "differs"
    ]
    return fields


def _shadow_label(shadow: Any) -> str:
    if not isinstance(shadow, Mapping):
        return "-"
    configured = shadow.get("configured")
    if not isinstance(configured, Mapping):
        return "off"
    target = f"{text(configured.get('version'))} {text(configured.get('percent'))}%"
    if shadow.get("active"):
        return f"{target}, mirroring"
    note = shadow.get("note")
    return f"{target} configured, NOT active" + (f" ({note})" if note else "")


def _replica_table(replicas: Any) -> list[str]:
    if not isinstance(replicas, list) or not replicas:
        return ["no replicas reported"]
    items = [r for r in replicas if isinstance(r, Mapping)]
    with_errors = any(r.get("last_error") for r in items)
    header = ["VERSION", "URL", "ADDRESS", "STATE", "FAILS", "IN-FLIGHT"]
    rows = []
    for replica in items:
        state = replica.get("state")
        if state is None and "healthy" in replica:
            state = "healthy" if replica["healthy"] else "unhealthy"
        row = [
            text(replica.get("version")),
            text(replica.get("url")),
            text(replica.get("address")),
            text(state),
            text(replica.get("consecutive_failures")),
            text(replica.get("inflight")),
        ]
        if with_errors:
            row.append(text(replica.get("last_error"), missing=""))
        rows.append(tuple(row))
    if with_errors:
        header.append("LAST ERROR")
    return table([tuple(header), *rows])

"""``streamflow diff``: what a new routing file would do to traffic, in operator terms."""

from __future__ import annotations

import argparse
from typing import Any

from cli.base import Commands, load_routing
from cli.text import indent, render_value, table
from gateway.routing import expected_shares, moved_share
from routing_config import RoutingConfig

__all__ = ["diff_lines", "register"]

STICKY_SAMPLE_KEYS = 20_000


def register(commands: Commands) -> None:
    sub = commands.add(
        "diff",
        run,
        "what a new routing file would change",
        "Compare FILE with the routing file in use: each version's share of new requests before "
        "and after, the share of sticky keys that would move between versions, and mode, live "
        "colour and other changes. Exits 1 if either file is invalid.",
    )
    sub.add_argument("file", metavar="FILE", help="the proposed routing file")
    sub.add_argument(
        "--against",
        default=commands.default_file,
        metavar="FILE",
        help=f"the routing file in use (default: {commands.default_file})",
    )


def run(args: argparse.Namespace) -> int:
    new = load_routing(args.file)
    old = load_routing(args.against)
    print(f"{args.file} (revision {new.revision}) against {args.against} (revision {old.revision})")
    if new.revision == old.revision:
        print("no changes: the files are identical")
        return 0
    for line in diff_lines(old.config, new.config):
        print(line)
    return 0


def diff_lines(old: RoutingConfig, new: RoutingConfig) -> list[str]:
    """What switching from ``old`` to ``new`` would do to traffic, in operator terms."""
    lines = [_change_line("mode", old.mode, new.mode)]
    if old.blue_green is not None or new.blue_green is not None:
        lines.append(_change_line("blue/green live", _live_label(old), _live_label(new)))

    lines.append("traffic share of new requests:")
    before, after = expected_shares(old), expected_shares(new)
    rows = []
    for name in sorted(before.keys() | after.keys()):
        was, now = before.get(name), after.get(name)
        if was is None:
            delta = "added"
        elif now is None:
            delta = "removed"
        else:
            delta = f"{round((now - was) * 100):+d}" if now != was else "="
        rows.append((name, _percent(was), "->", _percent(now), delta))
    lines += indent(table(rows))

    sample = STICKY_SAMPLE_KEYS
    lines.append(f"sticky keys that would move (estimated from {sample} sample keys):")
    moves = moved_share(old, new, sample=sample)
    move_rows = [(src, "->", dst, f"{share * 100:.1f}%") for (src, dst), share in moves.items()]
    lines += indent(table(move_rows)) if move_rows else ["  none"]
    if new.mode == "canary" and (new.canary is None or new.canary.sticky_header is None):
        lines.append("  (no canary.sticky_header: each unkeyed request is routed by weight anew)")

    others = _other_changes(old, new)
    if others:
        lines.append("other changes:")
        lines += indent(others)
    return lines


def _change_line(label: str, old: str, new: str) -> str:
    return f"{label}: {old} (unchanged)" if old == new else f"{label}: {old} -> {new}"


def _live_label(cfg: RoutingConfig) -> str:
    if cfg.blue_green is None:
        return "(no blue_green section)"
    return f"{cfg.blue_green.live} ({cfg.live_version()})"


def _percent(share: float | None) -> str:
    return "-" if share is None else f"{share * 100:g}%"


# Keys the sections above already explain; everything else is listed as a plain change.
_EXPLAINED = ("mode", "canary.weights", "blue_green.live")


def _other_changes(old: RoutingConfig, new: RoutingConfig) -> list[str]:
    before = _flatten(old.model_dump(mode="json", exclude_none=True))
    after = _flatten(new.model_dump(mode="json", exclude_none=True))
    lines = []
    for path in sorted(before.keys() | after.keys()):
        if any(path == key or path.startswith(key + ".") for key in _EXPLAINED):
            continue
        was, now = before.get(path), after.get(path)
        if was != now:
            lines.append(f"{path}: {render_value(was)} -> {render_value(now)}")
    return lines


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(value, dict):
        return {prefix: value}
    flat: dict[str, Any] = {}
    for key, child in value.items():
        flat.update(_flatten(child, f"{prefix}.{key}" if prefix else str(key)))
    return flat

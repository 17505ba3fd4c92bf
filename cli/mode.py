"""``streamflow switch`` and ``streamflow mode``: how new traffic is split (mode, live colour)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping

from cli.base import Commands
from routing_config.document import Document, child_map
from routing_config.store import open_store
from routing_config.weights import format_weights

__all__ = ["register"]


def register(commands: Commands) -> None:
    sub = commands.add(
        "switch",
        run_switch,
        "flip blue/green live colour",
        "Set blue_green.live, keeping the file's comments and layout; validated, then written "
        "atomically. It only moves traffic when mode is blue_green (a warning says so otherwise).",
    )
    sub.add_argument("colour", choices=["blue", "green"], help="the colour to make live")
    commands.add_file_option(sub)

    sub = commands.add(
        "mode",
        run_mode,
        "choose canary or blue_green routing",
        "Set the top-level mode, keeping the file's comments and layout; validated (the chosen "
        "mode's section must exist), then written atomically. Prints where new traffic goes.",
    )
    sub.add_argument("mode", choices=["canary", "blue_green"], help="the routing mode")
    commands.add_file_option(sub)


def run_switch(args: argparse.Namespace) -> int:
    seen: dict[str, object] = {}

    def edit(doc: Document) -> str | None:
        section = child_map(doc.data, "blue_green", args.file, create=False)
        seen.update(old=section.get("live"), section=section)
        if section.get("live") == args.colour:
            return None
        section["live"] = args.colour
        return f"blue_green.live {args.colour}"

    loaded = open_store(args.file).edit(edit)
    old, section = seen["old"], seen["section"]
    assert isinstance(section, Mapping)
    if loaded is None:
        version = section.get(args.colour)
        print(f"unchanged: {args.colour} ({version}) is already live in {args.file}")
        return 0
    cfg = loaded.config
    old_label = f"{old} ({section.get(old)})" if old in ("blue", "green") else str(old)
    print(f"{args.file}: blue_green.live {old_label} -> {args.colour} ({cfg.live_version()})")
    print(f"written (revision {loaded.revision})")
    if cfg.mode != "blue_green":
        # The flag is saved either way; say so, so nobody believes traffic just moved.
        print(
            f"warning: mode is {cfg.mode}, so traffic still follows canary.weights; "
            "blue_green.live takes effect once mode is blue_green",
            file=sys.stderr,
        )
    return 0


def run_mode(args: argparse.Namespace) -> int:
    seen: dict[str, object] = {}

    def edit(doc: Document) -> str | None:
        seen["old"] = old = doc.data.get("mode")
        if old == args.mode:
            return None
        doc.data["mode"] = args.mode
        return f"mode {args.mode}"

    loaded = open_store(args.file).edit(edit)
    if loaded is None:
        print(f"unchanged: mode is already {args.mode} in {args.file}")
        return 0
    cfg = loaded.config
    where = (
        f"every new request goes to {cfg.blue_green.live} ({cfg.live_version()})"
        if cfg.mode == "blue_green" and cfg.blue_green
        else f"traffic follows canary.weights {format_weights(cfg.weights())}"
    )
    print(f"{args.file}: mode {seen['old']} -> {args.mode}; {where}")
    print(f"written (revision {loaded.revision})")
    return 0

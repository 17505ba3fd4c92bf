"""``streamflow set-weights``: change canary.weights in place."""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Mapping

from cli.base import CommandError, Commands
from cli.text import indent, render_value, table
from routing_config.document import Document, child_map
from routing_config.store import open_store
from routing_config.weights import format_weights, plan_weights

__all__ = ["parse_assignment", "register"]


def register(commands: Commands) -> None:
    sub = commands.add(
        "set-weights",
        run,
        "change canary weights",
        "Set canary.weights in place, keeping the file's comments and layout. PERCENT is a "
        "whole number from 0 to 100. The rest of 100 goes to the one version you do not name "
        "that has weight, or, if none has, to the one version you do not name: with two "
        "versions, naming either is enough (with v2.3.1=90 v2.4.0=10, 'set-weights v2.4.0=25' "
        "gives 75/25; with v2.3.1=0 v2.4.0=100, 'set-weights v2.4.0=50' gives 50/50). Named "
        "weights that sum to 100 put every other version at 0; when it is not clear who takes "
        "the rest, the error shows the command to type. The result is validated before it is "
        "written, and written atomically (a file) or against the ConfigMap's resourceVersion "
        "(configmap:NS/NAME), so a concurrent change is never overwritten.",
    )
    sub.add_argument(
        "weights",
        nargs="+",
        type=parse_assignment,
        metavar="VERSION=PERCENT",
        help="e.g. v2.4.0=25",
    )
    commands.add_file_option(sub)


_WEIGHT_VALUE = re.compile(r"[+-]?\d+")


def parse_assignment(text: str) -> tuple[str, int]:
    """argparse type for VERSION=PERCENT, PERCENT a whole number from 0 to 100."""
    version, sep, value = text.partition("=")
    version, value = version.strip(), value.strip()
    if not sep:
        raise argparse.ArgumentTypeError(f"{text!r} has no '=PERCENT' (e.g. v2.4.0=25)")
    if not version:
        raise argparse.ArgumentTypeError(f"{text!r} names no version (e.g. v2.4.0=25)")
    if not _WEIGHT_VALUE.fullmatch(value):
        raise argparse.ArgumentTypeError(f"{text!r}: PERCENT must be a whole number (e.g. 25)")
    percent = int(value)
    if not 0 <= percent <= 100:
        raise argparse.ArgumentTypeError(f"{text!r}: PERCENT must be from 0 to 100")
    return version, percent


def run(args: argparse.Namespace) -> int:
    given: dict[str, int] = {}
    for version, weight in args.weights:
        if version in given:
            raise CommandError(f"error: {version} is given more than once", code=2)
        given[version] = weight

    # The store may apply the edit again on a fresh read (a ConfigMap changed meanwhile): what
    # it prints is from the attempt that was written.
    seen: dict[str, dict[str, object]] = {}

    def edit(doc: Document) -> str | None:
        canary = child_map(doc.data, "canary", args.file, create=True)
        weights = child_map(canary, "weights", args.file, create=True)
        # YAML may have typed a version name as a number; match on text, write back its key.
        keys = {str(key): key for key in weights}
        old = {name: weights[key] for name, key in keys.items()}
        versions = doc.data.get("versions")
        names = [str(name) for name in versions] if isinstance(versions, Mapping) else []
        unknown = [name for name in given if names and name not in names]
        if unknown:
            raise CommandError(
                f"error: not written; {args.file} has no version {unknown[0]!r}; "
                f"versions are: {', '.join(names)}"
            )
        new = plan_weights(old, given, names)
        seen.update(old=old, new=new)
        if new == old:
            return None
        for name, weight in new.items():
            if old.get(name) != weight:  # only touch changed entries, so the rest keep their form
                weights[keys.get(name, name)] = weight
        return f"canary.weights {format_weights(new)}"

    loaded = open_store(args.file).edit(edit)
    old, new = seen["old"], seen["new"]
    if loaded is None:
        print(f"unchanged: {args.file} already has canary.weights {format_weights(new)}")
        return 0
    print(f"{args.file}: canary.weights")
    rows = [(name, render_value(old.get(name)), "->", str(weight)) for name, weight in new.items()]
    for line in indent(table(rows)):
        print(line)
    print(f"written (revision {loaded.revision})")
    if loaded.config.mode != "canary":
        print(
            f"warning: mode is {loaded.config.mode}; canary.weights take effect only with "
            "mode: canary",
            file=sys.stderr,
        )
    return 0

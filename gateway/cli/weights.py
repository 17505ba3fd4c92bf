"""``streamflow set-weights``: change canary.weights in place."""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Mapping

from gateway.cli.base import CommandError, Commands
from gateway.cli.document import child_map, read_document, save_document
from gateway.cli.text import format_weights, indent, render_value, table

__all__ = ["parse_assignment", "plan_weights", "register"]


def register(commands: Commands) -> None:
    sub = commands.add(
        "set-weights",
        run,
        "change canary weights",
        "Set canary.weights in place, keeping the file's comments and layout. If exactly one "
        "version you do not name has weight, it takes the rest of 100 (with v2.3.1=90 "
        "v2.4.0=10, 'set-weights v2.4.0=25' gives 75/25); otherwise the weights you name must "
        "sum to 100 and other versions drop to 0. The result is validated before it is "
        "written, and written atomically.",
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
    """argparse type for VERSION=PERCENT; range and sum are left to the config validation."""
    version, sep, value = text.partition("=")
    version, value = version.strip(), value.strip()
    if not sep:
        raise argparse.ArgumentTypeError(f"{text!r} has no '=PERCENT' (e.g. v2.4.0=25)")
    if not version:
        raise argparse.ArgumentTypeError(f"{text!r} names no version (e.g. v2.4.0=25)")
    if not _WEIGHT_VALUE.fullmatch(value):
        raise argparse.ArgumentTypeError(f"{text!r}: PERCENT must be a whole number (e.g. 25)")
    return version, int(value)


def plan_weights(current: Mapping[str, object], given: Mapping[str, int]) -> dict[str, object]:
    """The new canary.weights: ``given`` applied, the rest of the 100 going where it must.

    If exactly one version not named has a weight, it takes whatever is left (possibly a bad
    number, which validation then reports). Otherwise the named weights must sum to 100 and any
    other version drops to 0.
    """
    total = sum(given.values())
    others = [name for name, w in current.items() if name not in given and _has_weight(w)]
    new: dict[str, object] = {**current, **given}
    if len(others) == 1:
        new[others[0]] = 100 - total
        return new
    if total != 100:
        if others:
            why = f"{', '.join(others)} also have weight, so none of them can take the rest"
        else:
            why = "no other version has weight to take the rest"
        raise CommandError(
            f"error: the given weights sum to {total}, not 100, and {why};",
            "  give every version that should keep a weight",
        )
    for name in others:
        new[name] = 0
    return new


def _has_weight(weight: object) -> bool:
    return isinstance(weight, int) and not isinstance(weight, bool) and weight > 0


def run(args: argparse.Namespace) -> int:
    given: dict[str, int] = {}
    for version, weight in args.weights:
        if version in given:
            raise CommandError(f"error: {version} is given more than once", code=2)
        given[version] = weight

    doc = read_document(args.file)
    canary = child_map(doc.data, "canary", args.file, create=True)
    weights = child_map(canary, "weights", args.file, create=True)
    # YAML may have typed a version name as a number; match on text, write back the file's key.
    keys = {str(key): key for key in weights}
    old = {name: weights[key] for name, key in keys.items()}
    new = plan_weights(old, given)
    change = f"canary.weights {format_weights(new)}"
    if new == old:
        print(f"unchanged: {args.file} already has {change}")
        return 0
    for name, weight in new.items():
        if old.get(name) != weight:  # only touch changed entries, so the rest keep their form
            weights[keys.get(name, name)] = weight

    loaded = save_document(args.file, doc.render(), change)
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

"""``streamflow set-weights``: change canary.weights in place."""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Mapping, Sequence

from gateway.cli.base import CommandError, Commands
from gateway.cli.document import child_map, read_document, save_document
from gateway.cli.text import format_weights, indent, render_value, table

__all__ = ["parse_assignment", "plan_weights", "register"]


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


def plan_weights(
    current: Mapping[str, object], given: Mapping[str, int], versions: Sequence[str] = ()
) -> dict[str, object]:
    """The new canary.weights: ``given`` applied, the rest of the 100 going where it must.

    ``current`` is canary.weights as in the file, ``versions`` every version the file defines.
    What the named weights leave goes to the one version not named that has weight; if none
    has, to the one version not named at all (so with two versions, naming either one works
    whichever holds the 100). Named weights that sum to 100 put every other version at 0.
    Anything else is ambiguous, and the error spells out a command that says it all.
    """
    total = sum(given.values())
    new: dict[str, object] = {**current, **given}
    unnamed = [name for name in dict.fromkeys([*current, *versions]) if name not in given]
    if total > 100:
        raise CommandError(
            f"error: the given weights sum to {total}; together they must not exceed 100", code=2
        )
    rest = 100 - total
    if rest == 0:
        for name in unnamed:
            if name in current:
                new[name] = 0
        return new
    holders = [name for name in unnamed if _has_weight(current.get(name))]
    takers = holders or unnamed
    if len(takers) == 1:
        new[takers[0]] = rest
        return new

    named = " ".join(f"{name}={weight}" for name, weight in given.items())
    if not takers:
        raise CommandError(
            f"error: the given weights ({named}) sum to {total}, not 100, and no version is left "
            f"unnamed to take the remaining {rest}; give weights that add up to 100"
        )
    if holders:
        why = ", ".join(f"{name} ({current[name]})" for name in holders) + " all have weight"
    else:
        why = f"none of {', '.join(unnamed)} has weight"
    example = " ".join([named, f"{takers[0]}={rest}", *(f"{name}=0" for name in takers[1:])])
    raise CommandError(
        f"error: {named} leaves {rest} for the other versions, and {why}, so which one takes it "
        "is not clear.",
        f"  Name each of them, e.g.: streamflow set-weights {example}",
    )


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
    versions = doc.data.get("versions")
    names = [str(name) for name in versions] if isinstance(versions, Mapping) else []
    unknown = [name for name in given if names and name not in names]
    if unknown:
        raise CommandError(
            f"error: not written; {args.file} has no version {unknown[0]!r}; "
            f"versions are: {', '.join(names)}"
        )
    new = plan_weights(old, given, names)
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

"""New canary weights from the ones an operator or the rollout controller names.

Shared by ``streamflow set-weights`` and the rollout controller, so both settle who takes the
rest of 100 by the same rule and refuse the same ambiguous edits.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from routing_config.errors import RoutingEditError

__all__ = ["format_weights", "plan_weights"]


def format_weights(weights: Mapping[str, object]) -> str:
    """``v2.3.1=95 v2.4.0=5``: weights as the CLI and the decision log write them."""
    return " ".join(f"{name}={weight}" for name, weight in weights.items()) or "(none)"


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
        raise RoutingEditError(
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
        raise RoutingEditError(
            f"error: the given weights ({named}) sum to {total}, not 100, and no version is left "
            f"unnamed to take the remaining {rest}; give weights that add up to 100"
        )
    if holders:
        why = ", ".join(f"{name} ({current[name]})" for name in holders) + " all have weight"
    else:
        why = f"none of {', '.join(unnamed)} has weight"
    example = " ".join([named, f"{takers[0]}={rest}", *(f"{name}=0" for name in takers[1:])])
    raise RoutingEditError(
        f"error: {named} leaves {rest} for the other versions, and {why}, so which one takes it "
        "is not clear.",
        f"  Name each of them, e.g.: streamflow set-weights {example}",
    )


def _has_weight(weight: object) -> bool:
    return isinstance(weight, int) and not isinstance(weight, bool) and weight > 0

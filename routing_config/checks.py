"""The rules of routing.yaml that relate one key to another, each reported with its key path.

Every problem is collected, not just the first, so one save shows the operator all that is wrong.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from routing_config.replica_key import replica_identity
from routing_config.types import VERSION_NAME

if TYPE_CHECKING:
    from routing_config.schema import RoutingConfig

__all__ = ["Loc", "cross_field_problems"]

Loc = tuple[str | int, ...]


def cross_field_problems(cfg: RoutingConfig) -> list[tuple[Loc, str]]:
    known = cfg.versions
    names = ", ".join(sorted(known))
    problems: list[tuple[Loc, str]] = []

    def check_known(loc: Loc, name: str) -> None:
        if name not in known:
            problems.append((loc, f"unknown version {name!r}; versions are: {names}"))

    for name in known:
        if not VERSION_NAME.fullmatch(name):
            problems.append(
                (("versions", name), "version names may only use letters, digits and . _ + -")
            )

    check_known(("stable",), cfg.stable)

    seen: dict[str, str] = {}
    for name, spec in known.items():
        for i, url in enumerate(spec.replicas):
            key = replica_identity(url)
            where = f"versions.{name}.replicas[{i}]"
            if key in seen:
                problems.append(
                    (("versions", name, "replicas", i), f"duplicate replica {url}, see {seen[key]}")
                )
            else:
                seen[key] = where
        if spec.protocol == "model_api":
            # A StreamFlow model server's answers say where the score is, and it takes binary
            # tensors: the keys for other servers would only mislead here.
            for key in ("score", "binary_tensors"):
                if getattr(spec, key) is not None:
                    problems.append(
                        (
                            ("versions", name, key),
                            "only for protocol: v2 (a StreamFlow model server's answers need none)",
                        )
                    )

    if cfg.mode == "canary" and cfg.canary is None:
        problems.append((("canary",), "missing; required when mode is canary"))
    if cfg.mode == "blue_green" and cfg.blue_green is None:
        problems.append((("blue_green",), "missing; required when mode is blue_green"))

    if cfg.canary is not None:
        weights = cfg.canary.weights
        for name, weight in weights.items():
            check_known(("canary", "weights", name), name)
            if weight < 0:
                problems.append((("canary", "weights", name), f"negative weight {weight}"))
        total = sum(weights.values())
        if total != 100:
            problems.append((("canary", "weights"), f"sum to {total}, must be 100"))

    if cfg.blue_green is not None:
        check_known(("blue_green", "blue"), cfg.blue_green.blue)
        check_known(("blue_green", "green"), cfg.blue_green.green)

    if cfg.shadow is not None:
        check_known(("shadow", "version"), cfg.shadow.version)

    if cfg.pinning is not None:
        for i, name in enumerate(cfg.pinning.allow):
            check_known(("pinning", "allow", i), name)

    if cfg.rollout is not None:
        check_known(("rollout", "candidate"), cfg.rollout.candidate)
        if cfg.rollout.candidate == cfg.stable:
            problems.append(
                (("rollout", "candidate"), "is the stable version; nothing to roll out")
            )
        rollout = cfg.rollout
        if rollout.strategy == "canary":
            if cfg.mode != "canary":
                problems.append(
                    (("rollout",), "a canary rollout steps canary weights: needs mode: canary")
                )
            if rollout.steps is None:
                problems.append((("rollout", "steps"), "required for strategy canary"))
        else:
            if cfg.mode != "blue_green":
                problems.append(
                    (
                        ("rollout",),
                        "a blue/green rollout flips the live colour: needs mode: blue_green",
                    )
                )
            if rollout.steps is not None:
                problems.append(
                    (
                        ("rollout", "steps"),
                        "a blue/green rollout has one step, the flip: leave it out",
                    )
                )
            bg = cfg.blue_green
            if bg is not None and {bg.blue, bg.green} != {cfg.stable, rollout.candidate}:
                problems.append(
                    (
                        ("rollout", "candidate"),
                        "a blue/green rollout needs stable and the candidate as blue and green",
                    )
                )
        if cfg.rollout.check_every > cfg.rollout.interval:
            problems.append((("rollout", "check_every"), "must not be longer than interval"))
        bake = cfg.rollout.shadow_bake
        first = rollout.steps[0] if rollout.steps else 100
        if rollout.quality is not None and bake is None and first == 100:
            problems.append(
                (
                    ("rollout", "quality"),
                    "the candidate serves no customer before 100% here, so only a shadow bake "
                    "can give it outcomes: add rollout.shadow_bake",
                )
            )
        if bake is not None and cfg.rollout.check_every > bake.duration:
            problems.append(
                (("rollout", "shadow_bake", "duration"), "must not be shorter than check_every")
            )

    return problems

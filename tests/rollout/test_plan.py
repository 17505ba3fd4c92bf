"""The rollout section as the gateway validates it, and the plan the controller follows."""

from __future__ import annotations

import pytest

from rollout.plan import plan_of
from routing_config import ConfigError, parse_config

BASE = """\
service: s
stable: v1
mode: canary
versions:
  v1: {replicas: [http://a:8000]}
  v2: {replicas: [http://b:8000]}
canary: {weights: {v1: 100, v2: 0}}
"""


def problems(rollout: str, base: str = BASE) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(base + rollout)
    return info.value.messages


def test_a_plan_with_defaults() -> None:
    loaded = parse_config(BASE + "rollout: {candidate: v2, steps: [5, 50, 100]}\n")
    plan = plan_of(loaded)
    assert plan is not None
    assert plan.spec.interval == 60 and plan.spec.check_every == 10
    assert plan.spec.min_requests == 300 and plan.spec.failure_limit == 2
    assert plan.weights(0) == {"v1": 95, "v2": 5}
    assert plan.weights(2) == {"v1": 0, "v2": 100}
    assert [plan.step_for(w) for w in (0, 5, 20, 50, 99, 100)] == [0, 0, 0, 1, 1, 2]
    assert plan_of(parse_config(BASE)) is None


def test_durations_take_a_unit() -> None:
    loaded = parse_config(
        BASE + "rollout: {candidate: v2, steps: [100], interval: 2m, check_every: 500ms}\n"
    )
    assert loaded.config.rollout is not None
    assert (loaded.config.rollout.interval, loaded.config.rollout.check_every) == (120, 0.5)
    assert problems("rollout: {candidate: v2, steps: [100], interval: 60}\n") == [
        "rollout.interval: 60 has no unit; write e.g. 60s (line 8)"
    ]
    assert (
        "is not a duration"
        in problems("rollout: {candidate: v2, steps: [100], interval: 1.5s}\n")[0]
    )


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ("{candidate: v2, steps: [50, 25, 100]}", "rollout.steps: steps must increase"),
        ("{candidate: v2, steps: [0, 100]}", "rollout.steps: each step is a candidate weight"),
        ("{candidate: v2, steps: [5, 50]}", "rollout.steps: the last step must be 100"),
        ("{candidate: v2, steps: []}", "rollout.steps: at least one step"),
        ("{candidate: v9, steps: [100]}", "rollout.candidate: unknown version 'v9'"),
        ("{candidate: v1, steps: [100]}", "rollout.candidate: is the stable version"),
        ("{candidate: v2, steps: [100], min_requests: 0}", "rollout.min_requests:"),
        ("{candidate: v2, steps: [100], thresholds: {psi: -1}}", "rollout.thresholds.psi:"),
        ("{candidate: v2, steps: [100], thresholds: {error_rate: 1.5}}", "rollout.thresholds"),
        ("{candidate: v2, steps: [100], thresholds: {p99: 2}}", "rollout.thresholds.p99: unknown"),
        (
            "{candidate: v2, steps: [100], interval: 1s, check_every: 5s}",
            "rollout.check_every: must not",
        ),
    ],
)
def test_bad_plans_name_the_field(section: str, message: str) -> None:
    found = problems(f"rollout: {section}\n")
    assert any(m.startswith(message) for m in found), found


def test_a_rollout_needs_canary_mode() -> None:
    base = BASE + "blue_green: {blue: v1, green: v2, live: blue}\n"
    base = base.replace("mode: canary", "mode: blue_green")
    assert any(
        "needs mode: canary" in m
        for m in problems("rollout: {candidate: v2, steps: [100]}\n", base)
    )


def test_the_plan_id_follows_the_section() -> None:
    one = plan_of(parse_config(BASE + "rollout: {candidate: v2, steps: [5, 100]}\n"))
    same = plan_of(parse_config(BASE + "rollout:\n  candidate: v2\n  steps: [5, 100]\n"))
    other = plan_of(parse_config(BASE + "rollout: {candidate: v2, steps: [10, 100]}\n"))
    assert one is not None and same is not None and other is not None
    assert one.id == same.id != other.id


def test_a_shadow_bake_is_validated_by_the_gateway() -> None:
    text = (
        "service: s\nstable: v1\nmode: canary\nversions:\n  v1: {replicas: [http://a:1]}\n"
        "  v2: {replicas: [http://b:1]}\ncanary: {weights: {v1: 100}}\n"
        "rollout: {candidate: v2, steps: [100], check_every: 10s,\n"
        "          shadow_bake: {percent: %s, duration: %s}}\n"
    )
    spec = parse_config(text % (25, "1m")).config.rollout
    assert spec is not None and spec.shadow_bake is not None
    assert (spec.shadow_bake.percent, spec.shadow_bake.duration) == (25, 60.0)
    assert (spec.shadow_bake.min_comparisons, spec.shadow_bake.min_tier_agreement) == (300, 0.9)
    with pytest.raises(ConfigError, match="rollout.shadow_bake.percent"):
        parse_config(text % (0, "1m"))
    with pytest.raises(ConfigError, match="rollout.shadow_bake.duration: must not be shorter"):
        parse_config(text % (25, "5s"))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("mode: blue_green", None),
        ("mode: canary", "rollout: a blue/green rollout flips the live colour"),
        ("steps: [50, 100]", "rollout.steps: a blue/green rollout has one step"),
        ("green: v3", "rollout.candidate: a blue/green rollout needs stable and the candidate"),
    ],
)
def test_a_blue_green_plan_is_validated(change: str, message: str | None) -> None:
    text = (
        "service: s\nstable: v1\nmode: blue_green\nversions:\n  v1: {replicas: [http://a:1]}\n"
        "  v2: {replicas: [http://b:1]}\n  v3: {replicas: [http://c:1]}\n"
        "canary: {weights: {v1: 100}}\nblue_green:\n  blue: v1\n  green: v2\n  live: blue\n"
        "rollout:\n  candidate: v2\n  strategy: blue_green\n"
    )
    if change.startswith("mode"):
        text = text.replace("mode: blue_green", change)
    elif change.startswith("steps"):
        text += f"  {change}\n"
    else:
        text = text.replace("green: v2", change)
    if message is None:
        spec = parse_config(text).config.rollout
        assert spec is not None and spec.strategy == "blue_green" and spec.steps is None
        return
    with pytest.raises(ConfigError, match=message):
        parse_config(text)


def test_a_canary_plan_needs_steps() -> None:
    text = (
        "service: s\nstable: v1\nmode: canary\nversions:\n  v1: {replicas: [http://a:1]}\n"
        "  v2: {replicas: [http://b:1]}\ncanary: {weights: {v1: 100}}\nrollout: {candidate: v2}\n"
    )
    with pytest.raises(ConfigError, match="rollout.steps: required for strategy canary"):
        parse_config(text)

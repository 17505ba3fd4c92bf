"""The weights planner: who takes the rest of 100 (the CLI and the controller share it)."""

import pytest

from routing_config import RoutingEditError
from routing_config.weights import plan_weights


def test_plan_weights_rules() -> None:
    assert plan_weights({"a": 90, "b": 10}, {"b": 25}) == {"a": 75, "b": 25}
    # The given weights sum to 100, so versions not named drop to 0.
    planned = plan_weights({"a": 50, "b": 30, "c": 20}, {"a": 100})
    assert planned == {"a": 100, "b": 0, "c": 0}
    # A version new to the weights map is added.
    assert plan_weights({"a": 100}, {"b": 5}) == {"a": 95, "b": 5}


@pytest.mark.parametrize(
    ("current", "given", "expected"),
    [
        # After a rollout to 100%: naming either version works, the other takes the rest.
        ({"a": 0, "b": 100}, {"b": 50}, {"a": 50, "b": 50}),
        ({"a": 0, "b": 100}, {"a": 50}, {"a": 50, "b": 50}),
        ({"a": 100, "b": 0}, {"a": 75}, {"a": 75, "b": 25}),
        ({"a": 100, "b": 0}, {"b": 25}, {"a": 75, "b": 25}),
        # A version defined but absent from the weights takes the rest when it is the only one.
        ({"b": 100}, {"b": 40}, {"b": 40, "a": 60}),
    ],
)
def test_plan_weights_two_versions_either_direction(
    current: dict[str, int], given: dict[str, int], expected: dict[str, int]
) -> None:
    assert plan_weights(current, given, ["a", "b"]) == expected


def test_plan_weights_one_holder_of_weight_takes_the_rest_among_three() -> None:
    planned = plan_weights({"a": 100, "b": 0, "c": 0}, {"b": 10}, ["a", "b", "c"])
    assert planned == {"a": 90, "b": 10, "c": 0}


def test_plan_weights_several_holders_is_ambiguous_and_names_the_command() -> None:
    with pytest.raises(RoutingEditError) as raised:
        plan_weights({"a": 50, "b": 30, "c": 20}, {"a": 60}, ["a", "b", "c"])
    message = "\n".join(raised.value.lines)
    assert "a=60 leaves 40 for the other versions, and b (30), c (20) all have weight" in message
    assert "streamflow set-weights a=60 b=40 c=0" in message


def test_plan_weights_no_holder_among_several_is_ambiguous() -> None:
    with pytest.raises(RoutingEditError) as raised:
        plan_weights({"a": 0, "b": 0, "c": 100}, {"c": 70}, ["a", "b", "c"])
    message = "\n".join(raised.value.lines)
    assert "none of a, b has weight" in message
    assert "streamflow set-weights c=70 a=30 b=0" in message


def test_plan_weights_every_version_named_must_sum_to_100() -> None:
    with pytest.raises(RoutingEditError, match=r"given weights \(a=50 b=40\) sum to 90, not 100"):
        plan_weights({"a": 90, "b": 10}, {"a": 50, "b": 40}, ["a", "b"])


def test_plan_weights_over_100_in_total() -> None:
    with pytest.raises(RoutingEditError, match="sum to 120; together they must not exceed 100"):
        plan_weights({"a": 90, "b": 10, "c": 0}, {"a": 60, "b": 60}, ["a", "b", "c"])

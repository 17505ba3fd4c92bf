"""`streamflow set-weights`: which version takes the rest of 100, and argument errors."""

import re
from pathlib import Path

import pytest

from gateway.cli import CommandError, weights
from tests.gateway.cli.samples import (
    SAMPLE,
    WEIGHTS_LINE,
    assert_only_lines_changed,
    run,
    weights_of,
)


def test_set_weights_one_version_gives_the_rest_to_the_other(
    capsys: pytest.CaptureFixture[str], routing_file: Path
) -> None:
    code, out, err = run(capsys, "set-weights", "v2.4.0=25", "--file", str(routing_file))
    assert code == 0, err
    assert weights_of(routing_file) == {"v2.3.1": 75, "v2.4.0": 25}
    assert_only_lines_changed(SAMPLE, routing_file.read_text(), {WEIGHTS_LINE})
    assert re.search(r"v2\.3\.1\s+90\s+->\s+75", out)
    assert re.search(r"v2\.4\.0\s+10\s+->\s+25", out)
    assert "written (revision " in out


def test_set_weights_all_versions(capsys: pytest.CaptureFixture[str], routing_file: Path) -> None:
    code, _, err = run(capsys, "set-weights", "v2.3.1=50", "v2.4.0=50", "--file", str(routing_file))
    assert code == 0, err
    assert weights_of(routing_file) == {"v2.3.1": 50, "v2.4.0": 50}


def test_set_weights_without_an_obvious_remainder_must_sum_to_100(
    capsys: pytest.CaptureFixture[str], routing_file: Path
) -> None:
    code, _, err = run(capsys, "set-weights", "v2.3.1=50", "v2.4.0=40", "--file", str(routing_file))
    assert code == 1
    assert "sum to 90, not 100" in err
    assert routing_file.read_text() == SAMPLE


def test_set_weights_unknown_version_is_rejected_by_validation(
    capsys: pytest.CaptureFixture[str], routing_file: Path
) -> None:
    code, _, err = run(
        capsys,
        "set-weights",
        "v2.3.1=0",
        "v2.4.0=0",
        "v9.9.9=100",
        "--file",
        str(routing_file),
    )
    assert code == 1
    assert "canary.weights.v9.9.9: unknown version 'v9.9.9'" in err
    assert routing_file.read_text() == SAMPLE


@pytest.mark.parametrize("argument", ["v2.4.0", "v2.4.0=abc", "=5", "v2.4.0=2.5"])
def test_set_weights_bad_argument_syntax(
    capsys: pytest.CaptureFixture[str], routing_file: Path, argument: str
) -> None:
    code, _, err = run(capsys, "set-weights", argument, "--file", str(routing_file))
    assert code == 2
    assert "argument VERSION=PERCENT" in err
    assert repr(argument) in err
    assert routing_file.read_text() == SAMPLE


def test_set_weights_same_version_twice(
    capsys: pytest.CaptureFixture[str], routing_file: Path
) -> None:
    code, _, err = run(capsys, "set-weights", "v2.4.0=20", "v2.4.0=30", "--file", str(routing_file))
    assert code == 2
    assert "v2.4.0 is given more than once" in err


def test_plan_weights_rules() -> None:
    assert weights.plan_weights({"a": 90, "b": 10}, {"b": 25}) == {"a": 75, "b": 25}
    # The given weights sum to 100, so versions not named drop to 0.
    assert weights.plan_weights({"a": 50, "b": 30, "c": 20}, {"a": 100}) == {
        "a": 100,
        "b": 0,
        "c": 0,
    }
    # A version new to the weights map is added.
    assert weights.plan_weights({"a": 100}, {"b": 5}) == {"a": 95, "b": 5}
    with pytest.raises(CommandError, match="b, c also have weight"):
        weights.plan_weights({"a": 50, "b": 30, "c": 20}, {"a": 60})

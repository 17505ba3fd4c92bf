"""The routing files and helpers the CLI tests share."""

from pathlib import Path

import pytest

import cli
from routing_config import parse_config
from tests.gateway.fakes import DESIGN_EXAMPLE

# The DESIGN.md example, comments included, at a 90/10 canary.
SAMPLE = DESIGN_EXAMPLE.replace("{v2.3.1: 95, v2.4.0: 5}", "{v2.3.1: 90, v2.4.0: 10}")
WEIGHTS_LINE = 9  # 0-based index of the canary.weights line
LIVE_LINE = 14

# The same layout in block style, indented by 4 with flush sequences, behind a `---` header.
BLOCK_SAMPLE = """\
# routing for the churn model
---
service: streamflow-churn
stable: "v2.3.1"   # quoted on purpose
mode: canary

versions:
    v2.3.1:
        replicas:
        - http://model-v2-3-1-a:8000   # zone a
        - http://model-v2-3-1-b:8000
    v2.4.0:
        replicas:
        - http://model-v2-4-0-a:8000
canary:
    weights:
        v2.3.1: 90   # stable
        v2.4.0: 10   # canary
"""


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def weights_of(path: Path) -> dict[str, int]:
    return dict(parse_config(path.read_text()).config.weights())


def assert_only_lines_changed(before: str, after: str, changed: set[int]) -> None:
    old, new = before.splitlines(), after.splitlines()
    assert len(old) == len(new)
    for i, (a, b) in enumerate(zip(old, new, strict=True)):
        if i in changed:
            assert a != b
            assert a.partition("#")[2] == b.partition("#")[2]  # the comment itself is kept
        else:
            assert a == b, f"line {i + 1} changed"

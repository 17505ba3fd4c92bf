"""YAML syntax errors in routing.yaml are reported at the line where the mistake is."""

import re
from pathlib import Path

import pytest

from routing_config import ConfigError, parse_config

SHIPPED = (Path(__file__).resolve().parents[2] / "routing.yaml").read_text()


def break_line(starting_with: str, replacement: str) -> tuple[str, int]:
    """The shipped routing.yaml with one line replaced, and that line's number."""
    lines = SHIPPED.splitlines()
    index = next(i for i, line in enumerate(lines) if line.startswith(starting_with))
    lines[index] = replacement
    return "\n".join(lines) + "\n", index + 1


def reported(text: str) -> tuple[str, int]:
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    [message] = info.value.messages
    assert message.startswith("yaml: ")
    line = re.search(r"\(line (\d+)\)$", message)
    assert line is not None, message
    return message, int(line.group(1))


@pytest.mark.parametrize(
    ("starts", "broken", "says"),
    [
        # The parser only notices these at the next key, several lines further down.
        ("  weights:", "  weights: {v2.3.1: 90, v2.4.0: 10", "'{' is not closed"),
        ("    replicas: [http://model-v2-4", "    replicas: [http://model-v2-4-0-a:8000", "'['"),
        ("  allow:", "  allow: [v2.3.1, v2.4.0", "'[' is not closed"),
        ("  header:", '  header: "X-Model-Version', "a quote is not closed"),
        ("  live:", "  live blue", "a key has no ':'"),
        # Closed only by the apostrophe in a comment twenty lines below.
        ("stable:", "stable: 'v2.3.1", "a quoted value runs from this line to line"),
        ("  sticky_header:", "   sticky_header: X-Customer-Id", "indentation does not line up"),
        ("  green:", " green: v2.4.0     # version behind the green colour", "indentation"),
        ("  green:", "\tgreen: v2.4.0", "a tab character: YAML indents with spaces only"),
        ("  weights:", "\tweights: {v2.3.1: 90, v2.4.0: 10}", "a tab character"),
    ],
)
def test_syntax_error_is_reported_at_the_broken_line(starts: str, broken: str, says: str) -> None:
    text, broken_line = break_line(starts, broken)
    message, line = reported(text)
    assert line == broken_line, message
    assert says in message


def test_unclosed_bracket_also_says_where_the_parser_stopped() -> None:
    text, broken_line = break_line("  weights:", "  weights: {v2.3.1: 90, v2.4.0: 10")
    message, _ = reported(text)
    # The next key, after the three comment lines, is where PyYAML gave up.
    assert f"the parser stopped at line {broken_line + 4}: expected ',' or '}}'" in message

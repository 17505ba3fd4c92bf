"""A YAML syntax error told at the line where the operator made it.

PyYAML notices most mistakes later than they happen: an unclosed ``{`` on line 35 is only found
when the parser runs into the next key on line 39 (its ``problem_mark``), while the line that
opened the construct is in its ``context_mark``. Which of the two is the real one depends on
the kind of error; this module picks it and keeps the other in the message.
"""

from __future__ import annotations

import yaml

__all__ = ["describe_yaml_error"]

# Constructs that are opened on one line and that the parser found not closed later: the
# mistake is where they were opened (the context mark), not where the parser gave up.
_UNCLOSED = {
    "while parsing a flow mapping": "'{' is not closed",
    "while parsing a flow sequence": "'[' is not closed",
    "while scanning a quoted scalar": "a quote is not closed",
    "while scanning a simple key": "a key has no ':' after it",
}
_TAB = "found character '\\t' that cannot start any token"


def describe_yaml_error(exc: yaml.MarkedYAMLError, text: str) -> tuple[str, int | None]:
    """(message, 1-based line of the mistake) for a syntax error in ``text``."""
    problem = exc.problem or exc.context or "invalid YAML"
    problem_line = _line(exc.problem_mark)
    context_line = _line(exc.context_mark)

    if problem == _TAB:
        return "a tab character: YAML indents with spaces only", problem_line

    opened = _UNCLOSED.get(exc.context or "")
    if opened and context_line is not None:
        return _with_where_found(opened, problem, problem_line, context_line), context_line

    quoted = _open_quote_before(text, exc.problem_mark)
    if quoted is not None:
        start, end = quoted
        summary = f"a quoted value runs from this line to line {end} (a closing quote missing?)"
        return _with_where_found(summary, problem, problem_line, start), start

    if exc.context == "while parsing a block mapping" and problem.startswith(
        "expected <block end>"
    ):
        # The line found is the one out of step; the mapping it breaks is only context.
        where = f" of the mapping from line {context_line}" if context_line is not None else ""
        return f"indentation does not line up with the keys{where} ({problem})", problem_line

    if exc.context and context_line is not None and context_line != problem_line:
        return f"{exc.context} (line {context_line}): {problem}", problem_line
    return problem, problem_line if problem_line is not None else context_line


def _line(mark: yaml.Mark | None) -> int | None:
    return mark.line + 1 if mark is not None else None


def _with_where_found(summary: str, problem: str, found: int | None, line: int) -> str:
    if found is None or found == line:
        return f"{summary} ({problem})"
    return f"{summary}; the parser stopped at line {found}: {problem}"


def _open_quote_before(text: str, mark: yaml.Mark | None) -> tuple[int, int] | None:
    """(start, end) lines of a quoted value spanning several lines that ends just before
    ``mark``: a missing closing quote that a later quote (an apostrophe in a comment) closed."""
    if mark is None:
        return None
    previous: yaml.Token | None = None
    try:
        for token in yaml.scan(text, Loader=yaml.SafeLoader):
            if token.start_mark.index >= mark.index:
                break
            previous = token
    except yaml.YAMLError:
        pass  # the scan fails where the parse did, or later; the tokens before are what count
    if (
        isinstance(previous, yaml.ScalarToken)
        and previous.style in ("'", '"')
        and previous.end_mark.line > previous.start_mark.line
    ):
        return previous.start_mark.line + 1, previous.end_mark.line + 1
    return None

"""The README's tour pastes and runs as written: complete commands, claims that match the code."""

import hashlib
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from cli import build_parser
from routing_config import load_config, parse_config

REPO_ROOT = Path(__file__).resolve().parents[1]
README = (REPO_ROOT / "README.md").read_text()


def tour() -> str:
    section = README[README.index("## Try it") :]
    return section[section.index("```bash\n") + len("```bash\n") : section.index("\n```\n")]


def commands() -> list[str]:
    """The tour's shell lines without comments, continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", tour())
    lines = [line.partition("  #")[0].strip() for line in text.splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def test_the_tour_has_no_placeholders() -> None:
    for line in commands():
        assert "..." not in line, line
        assert "<" not in line, line


SHELL_FENCE = re.compile(r"^```(bash|sh|console)[ \t]*$")


def shell_blocks(text: str = README) -> list[tuple[int, str]]:
    """Every ```bash, ```sh and ```console block: the README line its body starts on, the body."""
    lines = text.splitlines()
    blocks: list[tuple[int, str]] = []
    index = 0
    while index < len(lines):
        if SHELL_FENCE.match(lines[index]):
            end = next(i for i in range(index + 1, len(lines)) if lines[i].startswith("```"))
            blocks.append((index + 2, "\n".join(lines[index + 1 : end]) + "\n"))
            index = end
        index += 1
    return blocks


def bash_syntax_errors(blocks: list[tuple[int, str]]) -> list[str]:
    """``bash -n`` on each block: the ones that do not parse, named by their line."""
    errors = []
    for line, body in blocks:
        result = subprocess.run(["bash", "-n"], input=body, capture_output=True, text=True)
        if result.returncode != 0:
            errors.append(f"README.md line {line}: {result.stderr.strip()}")
    return errors


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_every_shell_block_parses() -> None:
    blocks = shell_blocks()
    assert len(blocks) >= 8
    assert bash_syntax_errors(blocks) == []


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_a_block_that_does_not_parse_is_named_by_its_line() -> None:
    text = 'intro\n\n```bash\necho ok\n```\n\n```sh\necho "open\nimport x\n```\n'
    blocks = shell_blocks(text)
    assert [line for line, _ in blocks] == [4, 8]
    errors = bash_syntax_errors(blocks)
    assert len(errors) == 1 and errors[0].startswith("README.md line 8: ")


def test_every_block_after_the_tour_reaches_the_gateway_through_streamflow_url() -> None:
    """One export carries a stack on another port through the whole README."""
    after = README[README.index("## Try it") :]
    for line, body in shell_blocks(after):
        for hard in re.findall(r"https?://127\.0\.0\.1:8080[^ '\"]*", body):
            # Only as the default of the variable, never as the only address.
            assert f"STREAMFLOW_URL:-{hard}" in body or f"or '{hard}'" in body, (line, hard)
        assert "--url $GW" not in body, line


def test_every_request_goes_to_the_gateway_the_tour_names() -> None:
    assert commands()[0] == "export STREAMFLOW_URL=${STREAMFLOW_URL:-http://127.0.0.1:8080}"
    assert commands()[1] == "GW=$STREAMFLOW_URL"
    for line in commands():
        if line.startswith("curl") or "  curl" in line:
            assert "$GW/predict" in line, line


def test_every_streamflow_command_in_the_tour_parses() -> None:
    parser = build_parser()
    found = [line for line in commands() if line.startswith(".venv/bin/streamflow")]
    assert len(found) >= 5
    for line in found:
        argv = shlex.split(line.replace("$GW", "http://127.0.0.1:8080"))[1:]
        args = parser.parse_args(argv)
        assert callable(args.run), line


def test_the_revision_shown_is_the_shipped_routing_files() -> None:
    shown = re.search(r"x-routing-revision: ([0-9a-f]{12})", tour())
    assert shown is not None
    shipped = hashlib.sha256((REPO_ROOT / "routing.yaml").read_bytes()).hexdigest()[:12]
    assert shown.group(1) == shipped


def test_the_payloads_the_tour_sends_exist() -> None:
    payloads = set(re.findall(r"-d @(\S+)", tour()))
    assert payloads == {"examples/customer.json"}
    assert all((REPO_ROOT / payload).is_file() for payload in payloads)


def test_the_routing_yaml_example_is_the_shipped_file() -> None:
    """The README's routing.yaml section shows what the shipped file says, in short form."""
    section = README[README.index("## routing.yaml") :]
    example = section[section.index("```yaml\n") + len("```yaml\n") : section.index("\n```\n")]
    shown = parse_config(example).config
    shipped = load_config(REPO_ROOT / "routing.yaml").config
    assert shown == shipped

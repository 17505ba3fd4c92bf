"""The README's tour pastes and runs as written: complete commands, claims that match the code."""

import hashlib
import re
import shlex
from pathlib import Path

from cli import build_parser

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


def test_every_request_goes_to_the_gateway_the_tour_names() -> None:
    assert commands()[0] == "GW=http://127.0.0.1:8080"
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

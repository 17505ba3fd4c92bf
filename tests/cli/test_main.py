"""The entry points: `streamflow` with no command, and `python -m gateway`."""

import re
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType

import pytest

import cli
from cli.base import Commands
from cli.main import COMMAND_MODULES, build_parser
from tests.cli.samples import run


def test_no_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys)
    assert code == 2
    assert "usage: streamflow" in err


def test_python_dash_m_gateway(routing_file: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "gateway", "validate", str(routing_file)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"ok: {routing_file} ")


def test_the_streamflow_script_runs_main() -> None:
    (script,) = entry_points(group="console_scripts", name="streamflow")
    assert script.value == "cli:main"
    assert script.load() is cli.main


def test_help_lists_every_command_in_order(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--help")
    assert code == 0
    listed = re.findall(r"^    (\S+)\s", out, re.M)
    assert listed == [
        "validate", "diff", "set-weights", "switch", "mode", "status", "shadow", "rollout",
        "outcomes", "quality", "export", "serve",
    ]  # fmt: skip


def test_a_command_is_one_module_with_register(capsys: pytest.CaptureFixture[str]) -> None:
    hello = ModuleType("hello")

    def register(commands: Commands) -> None:
        sub = commands.add(
            "hello", lambda args: print(f"hello {args.file}") or 0, "greet", "Greet."
        )
        commands.add_file_option(sub)

    hello.register = register  # type: ignore[attr-defined]
    parser = build_parser((*COMMAND_MODULES, hello))
    args = parser.parse_args(["hello", "--file", "x.yaml"])
    assert args.run(args) == 0
    assert capsys.readouterr().out == "hello x.yaml\n"

"""The ``streamflow`` entry point: one argparse parser, each sub-command added by its own module.

A new command is one module with a ``register(commands)`` function plus one entry in
``COMMAND_MODULES``.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Protocol

from cli import (
    diff,
    export,
    mode,
    outcomes,
    quality,
    rollout,
    serve,
    shadow,
    status,
    validate,
    weights,
)
from cli.base import CommandError, Commands, Run
from routing_config import RoutingEditError

__all__ = ["COMMAND_MODULES", "build_parser", "main"]


class CommandModule(Protocol):
    """A module of commands: ``register`` adds its sub-commands."""

    def register(self, commands: Commands) -> None: ...


# In the order `streamflow --help` lists them.
COMMAND_MODULES: tuple[CommandModule, ...] = (
    validate,
    diff,
    weights,
    mode,
    status,
    shadow,
    rollout,
    outcomes,
    quality,
    export,
    serve,
)

EXAMPLES = """\
examples:
  streamflow validate
  streamflow diff new-routing.yaml
  streamflow set-weights v2.4.0=25
  streamflow mode blue_green
  streamflow switch green
  streamflow status --url http://127.0.0.1:8080
  streamflow shadow
  streamflow rollout start
  streamflow rollout status
  streamflow rollout analysis --listen 127.0.0.1:8090 --gateway http://127.0.0.1:8080
  STREAMFLOW_OUTCOMES_TOKEN=... streamflow outcomes load outcomes.csv
  streamflow quality --window 7d
  streamflow export mlserver v2.3.1 --out mlserver-model
"""


def build_parser(modules: Sequence[CommandModule] = COMMAND_MODULES) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="streamflow",
        description="Operate the StreamFlow model gateway: check and edit routing.yaml, "
        "inspect a running gateway, run one.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=EXAMPLES,
    )
    commands = Commands.for_parser(parser)
    for module in modules:
        module.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        # --help and usage errors: return the status so main() can be called like a function.
        return exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 2
    run: Run = args.run  # set_defaults(run=...) by Commands.add
    try:
        return run(args)
    except (CommandError, RoutingEditError) as exc:
        for line in exc.lines:
            print(line, file=sys.stderr)
        return exc.code
    except BrokenPipeError:
        # The reader went away (`streamflow rollout status | head`): nothing more to say, and
        # no traceback. stdout goes to /dev/null so the interpreter's last flush fails quietly.
        _silence_stdout()
        return PIPE_CLOSED


# What a shell reports for a process a closed pipe stopped (128 + SIGPIPE).
PIPE_CLOSED = 141


def _silence_stdout() -> None:
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout closed or not a real file (captured in tests)
        pass
    finally:
        os.close(devnull)

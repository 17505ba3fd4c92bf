"""The operator CLI, ``streamflow``: one module per command behind a thin argparse entry.

``main.py`` builds the parser from the command modules listed there; each module (validate,
diff, weights, mode, status, serve) registers its own sub-command. ``document.py`` is the
round-trip edit of routing.yaml that every editing command shares.
"""

from gateway.cli.base import ROUTING_FILE_ENV, CommandError
from gateway.cli.main import build_parser, main

__all__ = ["ROUTING_FILE_ENV", "CommandError", "build_parser", "main"]

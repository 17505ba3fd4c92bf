"""The operator CLI, ``streamflow``: one module per command behind a thin argparse entry.

``main.py`` builds the parser from the command modules listed there; each module (validate,
diff, weights, mode, status, shadow, rollout, serve) registers its own sub-command. The round-trip
edit of routing.yaml that every editing command shares is the routing library's
(routing_config/document.py). The CLI is the top of the tree: the only package that imports both
the gateway and the rollout controller.
"""

from cli.base import ROUTING_FILE_ENV, CommandError
from cli.main import build_parser, main

__all__ = ["ROUTING_FILE_ENV", "CommandError", "build_parser", "main"]

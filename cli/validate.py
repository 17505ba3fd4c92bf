"""``streamflow validate``: check a routing file exactly as the gateway would."""

from __future__ import annotations

import argparse

from cli.base import Commands, load_routing
from routing_config import LoadedConfig
from routing_config.weights import format_weights

__all__ = ["register", "summary"]


def register(commands: Commands) -> None:
    sub = commands.add(
        "validate",
        run,
        "check a routing file",
        "Check a routing file exactly as the gateway would. Prints its revision, mode and "
        "weights; on errors prints each one with its key and line and exits 1.",
    )
    sub.add_argument(
        "file", nargs="?", default=commands.default_file, metavar="FILE", help=commands.file_help
    )


def run(args: argparse.Namespace) -> int:
    loaded = load_routing(args.file)
    print(f"ok: {args.file} ({summary(loaded)})")
    return 0


def summary(loaded: LoadedConfig) -> str:
    cfg = loaded.config
    parts = [f"revision {loaded.revision}", f"mode {cfg.mode}"]
    if cfg.mode == "blue_green" and cfg.blue_green is not None:
        parts.append(f"live {cfg.blue_green.live} = {cfg.live_version()}")
    parts.append(f"weights {format_weights(cfg.weights())}")
    return ", ".join(parts)

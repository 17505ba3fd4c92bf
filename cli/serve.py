"""``streamflow serve``: run the gateway under uvicorn."""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from cli.base import ROUTING_FILE_ENV, CommandError, Commands

__all__ = ["register"]

METRICS_DIR_ENV = "GATEWAY_METRICS_DIR"


def register(commands: Commands) -> None:
    sub = commands.add(
        "serve",
        run,
        "run the gateway",
        "Run the gateway with uvicorn (Ctrl-C stops it). Other settings come from GATEWAY_* "
        "environment variables.",
    )
    sub.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    sub.add_argument("--port", type=int, default=8080, help="port to bind (default: 8080)")
    sub.add_argument("--workers", type=int, default=1, help="worker processes (default: 1)")
    sub.add_argument(
        "--file",
        default=None,
        help=f"routing file to serve (sets ${ROUTING_FILE_ENV}; default: routing.yaml)",
    )


def run(args: argparse.Namespace) -> int:
    # Imported here: the editing commands must not pay for (or depend on) the server stack.
    import uvicorn

    from gateway.settings import load_settings

    if args.file is not None:
        # Through the environment so every worker process's settings see it.
        os.environ[ROUTING_FILE_ENV] = args.file
    settings = load_settings()
    with _metrics_dir(settings.metrics_dir, args.workers):
        uvicorn.run(
            "gateway.app:create_app",
            factory=True,
            host=args.host,
            port=args.port,
            workers=args.workers,
            log_level="info",
            access_log=settings.access_log,
            timeout_graceful_shutdown=10,
            # uvicorn's httptools protocol with plain predictions short-cut (gateway/server/).
            http="gateway.server:GatewayProtocol",
        )
    return 0


@contextlib.contextmanager
def _metrics_dir(configured: Path | None, workers: int) -> Iterator[None]:
    """The directory where the workers share their counters (gateway/metrics_share.py).

    The operator's own (GATEWAY_METRICS_DIR) is kept, minus the snapshots of an earlier run,
    which would otherwise add into this one's counters. Unset with several workers: a private
    one for this run, handed to the workers through the environment and removed at exit. One
    worker and none set: nothing to share.
    """
    from gateway.metrics_share import remove_snapshots

    if configured is not None:
        try:
            configured.mkdir(parents=True, exist_ok=True)
            remove_snapshots(configured)
        except OSError as exc:
            raise CommandError(f"gateway refused to start: {METRICS_DIR_ENV}: {exc}") from None
        yield
        return
    if workers <= 1:
        yield
        return
    private = tempfile.mkdtemp(prefix="gateway-metrics-")
    os.environ[METRICS_DIR_ENV] = private
    try:
        yield
    finally:
        os.environ.pop(METRICS_DIR_ENV, None)
        shutil.rmtree(private, ignore_errors=True)

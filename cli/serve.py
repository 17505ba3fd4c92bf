"""``streamflow serve``: run the gateway under uvicorn."""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cli.base import ROUTING_FILE_ENV, CommandError, Commands

__all__ = ["register"]

METRICS_DIR_ENV = "GATEWAY_METRICS_DIR"
ADMIN_PORT_ENV = "GATEWAY_ADMIN_PORT"
APP = "gateway.app:create_app"


def register(commands: Commands) -> None:
    sub = commands.add(
        "serve",
        run,
        "run the gateway",
        "Run the gateway with uvicorn (Ctrl-C stops it). Other settings come from GATEWAY_* "
        f"environment variables; {ADMIN_PORT_ENV} opens a second listener and serves the "
        "operators' endpoints (/routing, /metrics, /ui, ...) only there.",
    )
    sub.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    sub.add_argument("--port", type=int, default=8080, help="port to bind (default: 8080)")
    sub.add_argument("--workers", type=int, default=1, help="worker processes (default: 1)")
    sub.add_argument(
        "--file",
        default=None,
        help="routing file to serve, or configmap:NAMESPACE/NAME to follow a ConfigMap through "
        f"the Kubernetes API (sets ${ROUTING_FILE_ENV}; default: routing.yaml)",
    )


def run(args: argparse.Namespace) -> int:
    # Imported here: the editing commands must not pay for (or depend on) the server stack.
    import uvicorn

    from gateway.settings import load_settings

    if args.file is not None:
        # Through the environment so every worker process's settings see it.
        os.environ[ROUTING_FILE_ENV] = args.file
    settings = load_settings()
    if settings.admin_port and settings.admin_port == args.port:
        raise CommandError(
            f"gateway refused to start: {ADMIN_PORT_ENV}={settings.admin_port} is the client "
            "port (--port): give the admin listener a port of its own, or 0 for one port"
        )
    options: dict[str, Any] = {
        "factory": True,
        "host": args.host,
        "port": args.port,
        "workers": args.workers,
        "log_level": "info",
        "access_log": settings.access_log,
        "timeout_graceful_shutdown": 10,
        # uvicorn's httptools protocol, plain predictions short-cut (gateway/server.py).
        "http": "gateway.server:GatewayProtocol",
    }
    with _metrics_dir(settings.metrics_dir, args.workers):
        if settings.admin_port:
            _serve_with_admin(options, settings.admin_host or args.host, settings.admin_port)
        else:
            uvicorn.run(APP, **options)
    return 0


def _serve_with_admin(options: dict[str, Any], admin_host: str, admin_port: int) -> None:
    """uvicorn.run, with a second listening socket for the admin endpoints.

    Both sockets are bound here, before any worker starts, and every worker serves both with one
    app (uvicorn's Server.run and Multiprocess take a list of sockets: the way gunicorn's
    uvicorn worker hands them over), so the admin port needs no process, app or lifespan of its
    own, and works with any number of workers. The app answers the operators' paths only on the
    admin port (gateway/listeners.py).
    """
    from uvicorn import Config, Server
    from uvicorn.config import STARTUP_FAILURE
    from uvicorn.supervisors import Multiprocess

    config = Config(APP, **options)
    sockets = [config.bind_socket(), Config(APP, host=admin_host, port=admin_port).bind_socket()]
    print(f"admin endpoints on {admin_host}:{admin_port} only ({ADMIN_PORT_ENV})", flush=True)
    server = Server(config)
    try:
        if config.workers > 1:
            Multiprocess(config, sockets=sockets).run()
        else:
            server.run(sockets=sockets)
    except KeyboardInterrupt:
        pass
    finally:
        for sock in sockets:
            sock.close()
    if config.workers == 1 and not server.started:
        raise SystemExit(STARTUP_FAILURE)


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

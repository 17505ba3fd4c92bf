"""``streamflow export mlserver``: a version as a model directory MLServer serves."""

from __future__ import annotations

import argparse
from pathlib import Path

from cli.base import CommandError, Commands

__all__ = ["register"]


def register(commands: Commands) -> None:
    parser = commands.add(
        "export",
        lambda args: int(args.export_run(args)),
        "export a version for another model server",
        "Write a model version in a form another model server serves.",
    )
    subs = parser.add_subparsers(dest="export_format", metavar="FORMAT", required=True)
    summary = (
        "a directory `mlserver start DIR` serves with MLServer's scikit-learn runtime: a "
        "scikit-learn Pipeline (our encoding, then the artifact), checked_model.py (that runtime, "
        "checking each request by the model API's rules first), model-settings.json and "
        "settings.json. It takes the same V2 request as our replicas (one tensor per model-API "
        "field, shape [n]), refuses what they refuse with a 400 naming the input and row, and "
        "answers predict_proba; in routing.yaml give the version "
        "`protocol: v2` and `score: {output: predict_proba, column: 1}`. Ports come from "
        "MLServer's environment (MLSERVER_HTTP_PORT, MLSERVER_GRPC_PORT, MLSERVER_METRICS_PORT)."
    )
    sub = subs.add_parser(
        "mlserver", help="for MLServer's scikit-learn runtime", description=summary
    )
    sub.set_defaults(export_run=run_mlserver)
    sub.add_argument("version", metavar="VERSION", help="the version to export, e.g. v2.3.1")
    sub.add_argument("--out", type=Path, required=True, help="the directory to write")
    sub.add_argument(
        "--artifacts",
        type=Path,
        default=Path("artifacts"),
        help="where the versions' artifacts are, ARTIFACTS/VERSION/model.joblib "
        "(default: artifacts)",
    )
    sub.add_argument(
        "--name",
        default=None,
        help="the model's name on /v2/models/{name} (default: churn, routing.yaml's default "
        "model name)",
    )


def run_mlserver(args: argparse.Namespace) -> int:
    # Imported here: the export loads scikit-learn and pandas; other commands never need them,
    # and the gateway's image, which runs this CLI, has no model server at all.
    try:
        from model_server.mlserver_export import DEFAULT_MODEL_NAME, ExportError, export_version
    except ModuleNotFoundError as exc:
        raise CommandError(
            f"streamflow export needs the model server's packages ({exc.name} is not installed): "
            "run it where the artifacts are, e.g. in the repository after `make install`; the "
            "gateway's image has none"
        ) from None

    name = args.name or DEFAULT_MODEL_NAME
    try:
        done = export_version(args.artifacts, args.version, args.out, name=name)
    except ExportError as exc:
        raise CommandError(f"cannot export {args.version}: {exc}") from None
    print(f"exported {done.version} as model {done.name!r} to {done.directory}")
    print(
        f"  checked on {done.rows_checked:,} customers: the pipeline's probability is the "
        f"artifact's (largest gap {done.max_gap:.1e})"
    )
    print(f"  serve it: mlserver start {done.directory}")
    return 0

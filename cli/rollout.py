"""``streamflow rollout start|status|pause|resume|abort|analysis``: the progressive rollout
controller, and its judge served to Argo Rollouts or Flagger.

The controller is the ``rollout`` package beside ``gateway``; it is imported when a rollout
command runs, so the other commands work where only the gateway is installed.
"""

from __future__ import annotations

import argparse
import contextlib
import os
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from cli.base import (
    DEFAULT_GATEWAY_URL,
    GATEWAY_URL_ENV,
    CommandError,
    Commands,
    load_routing,
)
from cli.text import indent, table

__all__ = ["format_log", "register"]

DEFAULT_LISTEN = "127.0.0.1:8090"
SOURCE_TIMEOUT_S = 5.0


def register(commands: Commands) -> None:
    parser = commands.add(
        "rollout",
        lambda args: args.rollout_run(args),
        "step a candidate up by itself, judged against stable",
        "Run the plan in routing.yaml's rollout section: step the candidate's canary weight "
        "up, judge it against stable on errors, latency and prediction drift each check, and "
        "promote it or roll it back. Every check is one JSON line in the decision log "
        "(default: next to routing.yaml, routing.rollout.jsonl).",
    )
    subs = parser.add_subparsers(dest="rollout_command", metavar="ACTION", required=True)

    def add(name: str, run: Any, summary: str) -> argparse.ArgumentParser:
        sub = subs.add_parser(name, help=summary, description=summary)
        sub.set_defaults(rollout_run=run)
        commands.add_file_option(sub)
        sub.add_argument(
            "--log",
            help="decision log (default: next to the routing file; required with a "
            "configmap:NAMESPACE/NAME routing location, e.g. a file on the controller's volume)",
        )
        return sub

    start = add(
        "start",
        run_start,
        "run the controller in the foreground until it promotes (exit 0) or rolls back (1); "
        "started again, it resumes the step it was at; with STREAMFLOW_WEBHOOK_URL set, each "
        "decision is also POSTed there (Slack-compatible JSON)",
    )
    start.add_argument(
        "--gateway",
        action="append",
        metavar="URL",
        help=f"a gateway to scrape, with the replicas its /routing lists (repeat for several; "
        f"default ${GATEWAY_URL_ENV} or {DEFAULT_GATEWAY_URL}; now {commands.default_url})",
    )
    start.set_defaults(default_gateway=commands.default_url)
    start.add_argument(
        "--prometheus", metavar="URL", help="ask this Prometheus server instead of scraping"
    )
    add("status", run_status, "the decision log as a table: every check with its numbers")
    add("pause", run_command, "hold the current step: no check acts until resume").add_argument(
        "--reason", default=""
    )
    resume = add(
        "resume",
        run_command,
        "go on from the file as it is now (after a pause or a hand edit), the step begun afresh; "
        "--accept takes a step halted at its horizon as passed",
    )
    resume.add_argument("--reason", default="")
    resume.add_argument(
        "--accept",
        action="store_true",
        help="a step halted at its horizon (neither provably good nor bad): take it as passed "
        "and go on to the next step",
    )
    add("abort", run_abort, "roll back now: candidate to 0, rollout section removed").add_argument(
        "--reason", default=""
    )
    summary = (
        "serve the judge's verdict over HTTP for Argo Rollouts (GET /verdict?candidate=V) and "
        "Flagger (POST /flagger/rollout, /flagger/confirm-promotion): the same judge and "
        "sources as `rollout start`; it edits nothing (deploy/rollout-engines/ has examples)"
    )
    analysis = subs.add_parser("analysis", help=summary, description=summary)
    analysis.set_defaults(rollout_run=run_analysis)
    commands.add_file_option(analysis)
    analysis.add_argument(
        "--listen", default=DEFAULT_LISTEN, metavar="HOST:PORT", help=f"default {DEFAULT_LISTEN}"
    )
    analysis.add_argument(
        "--gateway", action="append", metavar="URL",
        help=(
            f"a gateway to scrape (repeat for several; default ${GATEWAY_URL_ENV} or "
            f"{DEFAULT_GATEWAY_URL}; now {commands.default_url})"
        ),
    )  # fmt: skip
    analysis.set_defaults(default_gateway=commands.default_url)
    analysis.add_argument(
        "--prometheus", metavar="URL", help="ask this Prometheus server instead of scraping"
    )


def _require_rollout() -> None:
    try:
        import rollout  # noqa: F401
    except ImportError:
        raise CommandError(
            "error: the rollout controller (package rollout) is not installed here; run it "
            "from the repository's environment (make install)"
        ) from None


def _log_for(args: argparse.Namespace) -> Any:
    _require_rollout()
    from rollout.log import DecisionLog, default_log_path
    from routing_config.store import CONFIGMAP_PREFIX

    if not args.log and args.file.startswith(CONFIGMAP_PREFIX):
        # A ConfigMap has no "next to it" on disk, and a log in the pod's filesystem would be
        # lost with the pod: the log's place must be chosen (in the cluster, a volume).
        raise CommandError(
            f"error: --log PATH is required with a ConfigMap routing location ({args.file}): "
            "the decision log must survive a restart, so give a file on a persistent volume"
        )
    return DecisionLog(args.log or default_log_path(args.file))


def _plan_for(path: str) -> Any:
    _require_rollout()
    from rollout.plan import plan_of

    plan = plan_of(load_routing(path))
    if plan is None:
        raise CommandError(f"error: {path} has no rollout section")
    return plan


def run_start(args: argparse.Namespace) -> int:
    _require_rollout()
    import httpx

    from rollout.controller import Controller, RolloutError
    from rollout.notify import WEBHOOK_ENV, Notifier
    from rollout.sources.prometheus import PrometheusSource
    from rollout.sources.quality import GatewayQuality
    from rollout.sources.scrape import ScrapeSource
    from rollout.sources.serving import RevisionMismatch, check_gateways_serve, served_revision

    load_routing(args.file)  # a clear error for an invalid file before anything runs
    webhook = os.environ.get(WEBHOOK_ENV, "").strip()
    try:
        notifier = Notifier(webhook) if webhook else None
    except ValueError as exc:
        raise CommandError(f"error: {exc}") from None
    gateways = args.gateway or [args.default_gateway]
    with httpx.Client(timeout=SOURCE_TIMEOUT_S) as client:
        source = (
            PrometheusSource(args.prometheus, client)
            if args.prometheus
            else ScrapeSource(gateways, client)
        )
        try:
            # Judged gateways must serve the file edited (Prometheus's targets are its own).
            if args.gateway or not args.prometheus:
                check_gateways_serve(
                    gateways,
                    lambda: load_routing(args.file).revision,
                    lambda gateway: served_revision(client, gateway),
                    path=args.file,
                )
            quality = GatewayQuality(gateways, client)
            controller = Controller(
                args.file,
                _log_for(args),
                source,
                say=_say,
                quality=quality,
                notify=notifier.offer if notifier is not None else None,
            )
            print(f"judging on {source.describe()}; log: {controller.log.path}", flush=True)
            if notifier is not None:
                print(f"notifying {notifier.where} of each decision", flush=True)
            return controller.run()
        except (RolloutError, RevisionMismatch) as exc:
            raise CommandError(f"error: {exc}") from None
        except KeyboardInterrupt:
            print("stopped; `streamflow rollout start` again resumes this step", flush=True)
            return 130
        finally:
            if notifier is not None:
                notifier.close()


def run_analysis(args: argparse.Namespace) -> int:
    _require_rollout()
    import httpx

    from rollout.analysis import Analysis
    from rollout.analysis_server import AnalysisServer
    from rollout.sources.prometheus import PrometheusSource
    from rollout.sources.scrape import ScrapeSource
    from routing_config import load_config

    load_routing(args.file)  # a clear error for an invalid file before anything runs
    host, _, port = str(args.listen).rpartition(":")
    if not host or not port.isdigit():
        raise CommandError(f"error: --listen: {args.listen!r} is not HOST:PORT")
    with httpx.Client(timeout=SOURCE_TIMEOUT_S) as client:
        source = (
            PrometheusSource(args.prometheus, client)
            if args.prometheus
            else ScrapeSource(args.gateway or [args.default_gateway], client)
        )
        # Read at every question: an edited plan counts at once, an invalid file is a 503.
        analysis = Analysis(source, lambda: load_config(args.file))
        try:
            server = AnalysisServer((host.strip("[]"), int(port)), analysis)
        except OSError as exc:
            raise CommandError(f"error: --listen {args.listen}: {exc.strerror or exc}") from None
        print(f"judging on {source.describe()}; verdicts on http://{args.listen}/verdict "
              "?candidate=VERSION", flush=True)  # fmt: skip
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            return 0
        finally:
            server.server_close()
    return 0


def _say(line: str) -> None:
    print(line, flush=True)


def run_command(args: argparse.Namespace) -> int:
    from rollout.log import OPERATOR

    plan = _plan_for(args.file)
    entry: dict[str, object] = {"by": OPERATOR, "plan": plan.id, "action": args.rollout_command}
    if args.reason:
        entry["reason"] = args.reason
    if getattr(args, "accept", False):
        entry["accept"] = True
    log = _log_for(args)
    log.append(entry)
    print(f"{args.rollout_command}: written to {log.path}; a running controller acts on it at "
          "its next check")  # fmt: skip
    return 0


def run_abort(args: argparse.Namespace) -> int:
    from rollout import actions
    from rollout.log import OPERATOR

    plan = _plan_for(args.file)
    log = _log_for(args)  # before the write: a missing --log must not leave it unlogged
    loaded = actions.roll_back(args.file, plan)
    reason = args.reason or "aborted by the operator"
    log.append({"by": OPERATOR, "plan": plan.id, "action": "abort", "reason": reason})
    print(f"{args.file}: {plan.candidate} at 0, rollout section removed (revision "
          f"{loaded.revision}); logged to {log.path}")  # fmt: skip
    return 0


def run_status(args: argparse.Namespace) -> int:
    log = _log_for(args)
    entries = log.read()
    if not entries:
        raise CommandError(f"error: no decision log at {log.path} (no rollout has run)")
    for line in format_log(entries):
        print(line)
    return 0


def _check(entry: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    for check in entry.get("checks", []):
        if check.get("name") == name:
            found: Mapping[str, Any] = check
            return found
    return {}


def _number(value: object, scale: float = 1.0, fmt: str = "{:.3f}") -> str:
    return fmt.format(float(value) * scale) if isinstance(value, int | float) else "-"


_PHASES = {"shadow_bake": "bake", "reference": "ref"}  # before step 0: no customer served


def _step(step: object) -> str:
    # Counted from 1, as the controller, the status page and its verdict line say it.
    return str(step + 1) if isinstance(step, int) and step >= 0 else "-"


def _weight(entry: Mapping[str, Any]) -> str:
    if "weight" not in entry:
        return "-"
    if entry.get("phase") == "shadow_bake":
        return "shadow"
    if "from_weight" in entry:  # an advance: its numbers are those of the step that passed
        return f"{entry['from_weight']}->{entry['weight']}%"
    return f"{entry['weight']}%"


def format_log(entries: Sequence[Mapping[str, Any]]) -> list[str]:
    """The log of the latest rollout as a table, then why the last decision was taken."""
    plan = entries[-1].get("plan")
    mine = [e for e in entries if e.get("plan") == plan]
    first = next((e for e in mine if e.get("by") == "controller"), mine[0])
    lines = [
        f"rollout {plan}: {first.get('candidate', '?')} against stable "
        f"{first.get('stable', '?')} ({len(mine)} entries)"
    ]
    rows = [("time", "step", "weight", "cand req", "stable req", "errors", "p99 ms", "psi",
             "tiers", "verdict", "action")]  # fmt: skip
    for e in mine:
        samples = e.get("samples", {})
        err, lat = _check(e, "error_rate"), _check(e, "latency_p99")
        psi = _check(e, "psi") or _check(e, "shadow_psi")
        # The bake's tier agreement, or the live tier mix's shift.
        tiers = _check(e, "tier_agreement") or _check(e, "tier_mix")
        stamp = str(e.get("time", ""))
        with contextlib.suppress(ValueError):
            stamp = datetime.fromisoformat(stamp).strftime("%H:%M:%S")
        rows.append(
            (
                stamp,
                _PHASES.get(str(e.get("phase")), _step(e.get("step"))),
                _weight(e),
                _number(samples.get("candidate"), fmt="{:.0f}"),
                _number(samples.get("stable"), fmt="{:.0f}"),
                _number(err.get("value"), 100, "{:.2f}%"),
                _number(lat.get("value"), 1000, "{:.1f}"),
                _number(psi.get("value")),
                _number(tiers.get("value"), 100, "{:.1f}%"),
                str(e.get("verdict", "-")),
                f"{e.get('action', '-')}"
                + (" (operator)" if e.get("by") == "operator" else "")
                + (" (waiting for outcomes)" if e.get("state") == "waiting_for_outcomes" else ""),
            )
        )
    lines += indent(table(rows))
    judged = next((e for e in reversed(mine) if e.get("checks")), None)
    if judged is not None:
        # What was compared and how strong the evidence is, check by check.
        lines.append(f"evidence at the last check ({judged.get('verdict', '-')}):")
        lines += indent([f"{c.get('name')}: {c.get('status')}: {c.get('detail', '')}"
                         for c in judged["checks"]])  # fmt: skip
    gated = next((e for e in reversed(mine) if e.get("quality")), None)
    if gated is not None:
        # The quality gate's last word: its decision and every number behind it.
        q = gated["quality"]
        lines.append(
            f"quality gate ({q.get('design') or '-'}): {q.get('decision')}: "
            f"{q.get('n_candidate')} and {q.get('n_stable')} labelled outcomes, "
            f"needs {q.get('min_outcomes')} each; AUC difference "
            f"{_number(q.get('auc_difference'), fmt='{:+.4f}')}, bounds "
            f"[{_number(q.get('lower'), fmt='{:+.4f}')}, {_number(q.get('upper'), fmt='{:+.4f}')}]"
            f", margin -{q.get('max_auc_drop')}"
        )
    last = mine[-1]
    if last.get("state") == "waiting_for_outcomes" and last.get("action") == "hold":
        lines.append("WAITING FOR OUTCOMES: the quality gate holds the step")
    if last.get("action") == "halt":
        lines.append("HALTED: the step's weights stay until the operator decides")
    lines.append(f"last: {last.get('action')}: {last.get('reason', '')}")
    return lines

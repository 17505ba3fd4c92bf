"""GET /shadow: how the shadow version's answers differ from the ones the clients got."""

from __future__ import annotations

from fastapi import FastAPI

from gateway.metrics_share import SharedCounters
from gateway.shadow.ledger import ShadowLedger, merge_reports
from gateway.shadow.report import build_report
from gateway.state import GatewayState


def shadow_report(
    state: GatewayState, ledger: ShadowLedger, shared: SharedCounters | None
) -> dict[str, object]:
    """The shadow comparison as GET /shadow gives it (also read by /stats' verdict line)."""
    plan = state.snapshot.shadow
    ledger.follow(plan.section if plan else "", plan.since if plan else None)
    if shared is not None:
        since, pairs = merge_reports(ledger.section, shared.read_documents("shadow"))
    else:
        since, pairs = ledger.since, ledger.pairs
    return build_report(plan.spec if plan else None, since, pairs)


def serve_shadow(
    app: FastAPI, state: GatewayState, ledger: ShadowLedger, shared: SharedCounters | None
) -> None:
    """``shared``: every worker's documents under ``serve --workers N``, else None."""

    @app.get("/shadow")
    async def shadow() -> dict[str, object]:
        """How the shadow version's answers differ from the clients', since the shadow section
        of routing.yaml last changed (summed over workers under ``serve --workers N``)."""
        return shadow_report(state, ledger, shared)

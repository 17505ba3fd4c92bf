"""The rollout controller's decision log: where it lives and the fields its readers show."""

from __future__ import annotations

from pathlib import Path

__all__ = ["DECISION_CHECK_FIELDS", "DECISION_FIELDS", "decision_log_path"]


def decision_log_path(routing_file: str | Path) -> Path:
    """Next to routing.yaml: routing.yaml -> routing.rollout.jsonl."""
    path = Path(routing_file)
    return path.with_name(f"{path.stem}.rollout.jsonl")


# The fields of an entry the status page and ``streamflow rollout status`` show, in order.
DECISION_FIELDS = (
    "time",
    "by",
    "step",
    "weight",
    "from_weight",
    "phase",
    "verdict",
    "action",
    "reason",
    "accept",
    # For the status page's verdict line (gateway/glance.py): which rollout, since when this
    # step, its samples and failed checks in a row.
    "plan",
    "candidate",
    "step_started",
    "samples",
    "failures",
    "state",
)
# Of each check in an entry: what was compared and how strong the evidence is.
DECISION_CHECK_FIELDS = ("name", "status", "detail", "evidence", "bar")

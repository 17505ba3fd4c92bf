"""What the judge says: a verdict's status, each check's finding, and the verdict itself.

A verdict is one of five statuses; in the batch arrays of the checks and the rules each is a
code, in the order a verdict takes them (the worst wins). The methods behind each status are in
rollout/judge.py's docstring.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum

__all__ = [
    "CODE_OF_STATUS",
    "FAIL",
    "HALTED",
    "INCONCLUSIVE",
    "PASS",
    "STATUS_OF_CODE",
    "WAITING",
    "Check",
    "Status",
    "Verdict",
]


class Status(StrEnum):
    WAITING_FOR_SAMPLES = "WAITING_FOR_SAMPLES"
    PASS = "PASS"
    FAIL = "FAIL"
    INCONCLUSIVE = "INCONCLUSIVE"
    HALTED = "HALTED"  # at the horizon, neither provably in nor out: the operator decides


# Status codes in arrays, in the order a verdict takes them (the worst wins).
PASS, WAITING, INCONCLUSIVE, FAIL, HALTED = 0, 1, 2, 3, 4
STATUS_OF_CODE = {
    PASS: Status.PASS,
    WAITING: Status.WAITING_FOR_SAMPLES,
    INCONCLUSIVE: Status.INCONCLUSIVE,
    FAIL: Status.FAIL,
    HALTED: Status.HALTED,
}
CODE_OF_STATUS = {status: code for code, status in STATUS_OF_CODE.items()}


@dataclass(frozen=True, slots=True)
class Check:
    name: str  # error_rate | latency_p99 | psi | tier_mix | tier_agreement | shadow_psi
    status: Status
    value: float | None  # the candidate's number (rate, seconds, PSI)
    threshold: float | None
    detail: str
    # How strong the evidence against the candidate is (an e-value) and the bar a FAIL needs.
    evidence: float | None = None
    bar: float | None = None

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {
            "name": self.name,
            "status": self.status.value,
            "value": self.value,
            "threshold": self.threshold,
            "detail": self.detail,
        }
        if self.evidence is not None:
            out["evidence"] = self.evidence
            out["bar"] = self.bar
        return out


@dataclass(frozen=True, slots=True)
class Verdict:
    status: Status
    checks: tuple[Check, ...]
    reason: str
    candidate_requests: float
    stable_requests: float
    reference: str | None = None  # the window stable's counts are of, when the caller says

    def against(self, reference: str) -> Verdict:
        return replace(self, reference=reference)

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {
            "verdict": self.status.value,
            "judged": self.reason,
            "samples": {"candidate": self.candidate_requests, "stable": self.stable_requests},
            "checks": [check.to_json() for check in self.checks],
        }
        if self.reference is not None:
            out["stable_window"] = self.reference
        return out

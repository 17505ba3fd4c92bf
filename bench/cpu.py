"""CPU a process spends per request: user + system time read from /proc around a load run.

Wall-clock throughput moves with whatever else the machine runs; the CPU a server process
spends on each request moves much less, so it is what the bars on a server's own cost read.
A target's CPU is its whole session's (each process the bench starts leads its own session):
nginx's master and workers, a gateway's workers, one replica.
"""

from __future__ import annotations

import os
from pathlib import Path

PROC = Path("/proc")
TICKS = os.sysconf("SC_CLK_TCK")


def session_cpu_s(session: int) -> float:
    """User + system seconds of every live process in ``session``."""
    ticks = 0
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_bytes()
        except OSError:  # gone since the listing
            continue
        # The command name (field 2) may hold spaces and parentheses: fields after its ")".
        fields = stat[stat.rindex(b")") + 2 :].split()
        if int(fields[3]) == session:
            ticks += int(fields[11]) + int(fields[12])
    return ticks / TICKS


def per_request_us(cpu_s: float, requests: int) -> float | None:
    return round(cpu_s / requests * 1e6, 1) if requests else None

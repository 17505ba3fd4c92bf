"""wrk runs: a Lua script that POSTs a prediction with a new sticky key each request."""

from __future__ import annotations

import json
import statistics
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

from bench.cpu import per_request_us, session_cpu_s

MARKER = "BENCH-RESULT "

# Every request carries a different X-Customer-Id (thread number + counter), so the gateway
# hashes a new sticky key each time, as it would under real traffic. done() prints the numbers
# as one JSON line, so nothing depends on wrk's human-readable units.
LUA = """
local body = [==[%(body)s]==]
local path = "%(path)s"
local sticky = "%(sticky)s"
local headers = { ["Content-Type"] = "application/json" }
local counter = 0
local prefix = "c"
local threads = {}

function setup(thread)
  thread:set("id", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  prefix = "c" .. tostring(id) .. "-"
end

function request()
  counter = counter + 1
  if sticky ~= "" then
    headers[sticky] = prefix .. tostring(counter)
  end
  return wrk.format("POST", path, headers, body)
end

-- wrk keeps one latency histogram for every answer. The accepted answers' p99 is bounded from
-- above by the percentile of all answers at the rank of the accepted ones' slowest 1%%: exact
-- when no refused answer is among those slowest, lower otherwise.
function done(summary, latency, requests)
  local e = summary.errors
  local accepted = summary.requests - e.status
  local tail = 99
  if summary.requests > 0 then
    tail = 100 - accepted / summary.requests
  end
  io.write(string.format(
    '%(marker)s{"requests":%%d,"duration_us":%%d,"bytes":%%d,' ..
    '"p50_us":%%d,"p90_us":%%d,"p99_us":%%d,"mean_us":%%.1f,"max_us":%%d,' ..
    '"accepted_p99_us":%%d,' ..
    '"errors":{"connect":%%d,"read":%%d,"write":%%d,"status":%%d,"timeout":%%d}}\\n',
    summary.requests, summary.duration, summary.bytes,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.mean, latency.max, latency:percentile(tail),
    e.connect, e.read, e.write, e.status, e.timeout))
end
"""


@dataclass(frozen=True)
class WrkResult:
    connections: int
    requests: int
    duration_s: float
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float
    errors: int  # socket errors + non-2xx/3xx answers + timeouts
    goodput_rps: float = 0.0  # answers below 400 a second: what the gateway accepted and served
    refused: int = 0  # answers of 400 or more (under overload: the 503s shed)
    timeouts: int = 0  # requests wrk gave up on after its --timeout
    accepted_p99_ms: float = 0.0  # at most this: see the Lua script's done()
    # The server's CPU (user + system, its whole session, from /proc) over the run, per request
    # answered; None when the run was not given the server's session (bench/cpu.py).
    cpu_us_per_request: float | None = None

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


class WrkError(Exception):
    pass


def combine(rounds: list[WrkResult]) -> WrkResult:
    """Rounds of one target, interleaved with the other targets' rounds: medians of each."""
    if len(rounds) == 1:
        return rounds[0]

    def median(values: list[float]) -> float:
        return statistics.median(values)

    return WrkResult(
        connections=rounds[0].connections,
        requests=sum(r.requests for r in rounds),
        duration_s=round(sum(r.duration_s for r in rounds), 3),
        rps=round(median([r.rps for r in rounds]), 1),
        p50_ms=median([r.p50_ms for r in rounds]),
        p90_ms=median([r.p90_ms for r in rounds]),
        p99_ms=median([r.p99_ms for r in rounds]),
        mean_ms=round(median([r.mean_ms for r in rounds]), 3),
        max_ms=max(r.max_ms for r in rounds),
        errors=sum(r.errors for r in rounds),
        goodput_rps=round(median([r.goodput_rps for r in rounds]), 1),
        refused=sum(r.refused for r in rounds),
        timeouts=sum(r.timeouts for r in rounds),
        accepted_p99_ms=median([r.accepted_p99_ms for r in rounds]),
        cpu_us_per_request=_median_of_known([r.cpu_us_per_request for r in rounds]),
    )


def _median_of_known(values: list[float | None]) -> float | None:
    known = [value for value in values if value is not None]
    return round(statistics.median(known), 1) if known else None


def write_script(path: Path, body: str, request_path: str, sticky_header: str | None) -> Path:
    if "]==]" in body:
        raise ValueError("request body cannot be embedded in the Lua script")
    path.write_text(
        LUA % {"body": body, "path": request_path, "sticky": sticky_header or "", "marker": MARKER}
    )
    return path


def run_wrk(
    wrk: str,
    script: Path,
    url: str,
    *,
    connections: int,
    duration_s: float,
    threads: int,
    timeout_s: float = 5.0,
    session: int | None = None,
) -> WrkResult:
    """One wrk run; a request not answered within ``timeout_s`` (whole seconds) counts as a
    timeout. With ``session`` (the server's session id: the pid of the process the bench
    started), the server's CPU per request is read too."""
    threads = max(1, min(threads, connections))
    argv = [
        wrk,
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(duration_s))}s",
        "--timeout",
        f"{max(1, round(timeout_s))}s",  # wrk takes whole seconds
        "-s",
        str(script),
        url,
    ]
    cpu_before = session_cpu_s(session) if session is not None else 0.0
    proc = subprocess.run(
        argv, capture_output=True, text=True, timeout=duration_s + 30, check=False
    )
    cpu = session_cpu_s(session) - cpu_before if session is not None else None
    line = next((x for x in proc.stdout.splitlines() if x.startswith(MARKER)), None)
    if proc.returncode != 0 or line is None:
        raise WrkError(f"wrk against {url} failed ({proc.returncode}): {proc.stderr.strip()}")
    raw = json.loads(line[len(MARKER) :])
    seconds = raw["duration_us"] / 1e6
    refused = raw["errors"]["status"]
    return WrkResult(
        connections=connections,
        requests=raw["requests"],
        duration_s=round(seconds, 3),
        rps=round(raw["requests"] / seconds, 1) if seconds else 0.0,
        p50_ms=raw["p50_us"] / 1000,
        p90_ms=raw["p90_us"] / 1000,
        p99_ms=raw["p99_us"] / 1000,
        mean_ms=round(raw["mean_us"] / 1000, 3),
        max_ms=raw["max_us"] / 1000,
        errors=sum(raw["errors"].values()),
        goodput_rps=round((raw["requests"] - refused) / seconds, 1) if seconds else 0.0,
        refused=refused,
        timeouts=raw["errors"]["timeout"],
        accepted_p99_ms=raw["accepted_p99_us"] / 1000,
        cpu_us_per_request=None if cpu is None else per_request_us(cpu, raw["requests"]),
    )

"""``streamflow outcomes load FILE``: the nightly batch of observed outcomes, into the gateway.

The file (CSV with a header row, or JSON lines; a million rows or more) is read twice, a line
at a time, so memory stays bounded whatever its size: first every row is validated (every bad
row named with its line and field, as many as there are, and then nothing is sent: a file with
a bad row writes nothing), then the rows are posted to the gateway's ``POST /outcomes`` in
chunks, with the bearer token from ``$STREAMFLOW_OUTCOMES_TOKEN``. Posting through the gateway
(rather than into the store) keeps one way in: the same token, the same counters on /metrics,
and the same store whichever backend the gateway uses. Outcomes are idempotent, so a load that
stopped halfway (a network failure) is simply run again: what was already stored counts as a
duplicate. A progress bar goes to stderr; the summary to stdout.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import httpx

from cli.base import CommandError, Commands
from outcomes.ingest import Problem, parse_item, read_rows, sniff_format
from outcomes.records import Outcome, OutcomeTally

__all__ = ["TOKEN_ENV", "register"]

TOKEN_ENV = "STREAMFLOW_OUTCOMES_TOKEN"
CHUNK = 5000
PROBLEMS_SHOWN = 10_000
POST_TIMEOUT_S = 120.0
RETRIES = 3


def register(commands: Commands) -> None:
    parser = commands.add(
        "outcomes",
        lambda args: args.outcomes_run(args),
        "send observed outcomes to a running gateway",
        "Observed outcomes (did the customer churn) for the predictions the gateway recorded.",
    )
    subs = parser.add_subparsers(dest="outcomes_command", metavar="ACTION", required=True)
    load = subs.add_parser(
        "load",
        help="load a CSV or JSON lines file of outcomes",
        description=(
            "Validate FILE (CSV with a header, or JSON lines) whole, then post it in chunks to "
            f"the gateway's POST /outcomes with the token in ${TOKEN_ENV}. Each row: "
            "request_id (and row, for a batch answer) or customer_id, churned, observed_at. "
            "A file with a bad row sends nothing; loading it twice counts it once."
        ),
    )
    load.set_defaults(outcomes_run=run_load)
    load.add_argument("file", type=Path, help="CSV (.csv) or JSON lines (.jsonl) file")
    commands.add_url_option(load)
    load.add_argument("--format", choices=["csv", "jsonl"], help="default: from the file name")
    load.add_argument("--chunk", type=int, default=CHUNK, help=f"rows per post (default {CHUNK})")
    load.add_argument("--quiet", action="store_true", help="no progress bar")


def run_load(args: argparse.Namespace) -> int:
    token = os.environ.get(TOKEN_ENV, "")
    if not token:
        raise CommandError(f"set {TOKEN_ENV} to the gateway's GATEWAY_OUTCOMES_TOKEN")
    progress = Progress(sys.stderr, enabled=not args.quiet)
    total = load(args.file, args.url, token, args.format, args.chunk, progress)
    print(
        f"{total.received} outcomes: {total.new} new, {total.duplicates} already there, "
        f"{total.labelled} predictions labelled, {total.unmatched} matched no prediction"
    )
    if total.unmatched_keys:
        print(f"unmatched, first of them: {', '.join(total.unmatched_keys)}")
    return 0


def load(
    path: Path,
    url: str,
    token: str,
    fmt: str | None,
    chunk_rows: int,
    progress: Progress,
    transport: httpx.BaseTransport | None = None,
) -> OutcomeTally:
    """Check the whole file, then post it in chunks; the summed tally of the gateway's answers."""
    if not path.is_file():
        raise CommandError(f"{path}: no such file")
    fmt = fmt or sniff_format(path.name, _first_line(path))
    progress.start("checking", path.stat().st_size)
    problems: list[Problem] = []
    with path.open(encoding="utf-8", newline="") as handle:
        for _outcome in _outcomes(handle, fmt, problems, progress):
            pass
    progress.done()
    if problems:
        for problem in problems[:PROBLEMS_SHOWN]:
            where = f"{path}:{problem.row}: " + (f"{problem.field}: " if problem.field else "")
            print(where + problem.message, file=sys.stderr)
        more = len(problems) - PROBLEMS_SHOWN
        if more > 0:
            print(f"{path}: ... and {more} more", file=sys.stderr)
        raise CommandError(f"{path}: {len(problems)} bad rows; nothing was sent")

    progress.start("sending", path.stat().st_size)
    total = OutcomeTally()
    headers = {"authorization": f"Bearer {token}"}
    with (
        httpx.Client(
            base_url=url, timeout=POST_TIMEOUT_S, headers=headers, transport=transport
        ) as client,
        path.open(encoding="utf-8", newline="") as handle,
    ):
        chunk: list[dict[str, Any]] = []
        for outcome in _outcomes(handle, fmt, [], progress):
            chunk.append(_wire(outcome))
            if len(chunk) >= chunk_rows:
                total.add(_post(client, url, chunk))
                chunk = []
        if chunk:
            total.add(_post(client, url, chunk))
    progress.done()
    return total


def _first_line(path: Path) -> str:
    with path.open(encoding="utf-8", errors="replace") as handle:
        return handle.readline()


def _outcomes(
    handle: IO[str], fmt: str, problems: list[Problem], progress: Progress
) -> Iterator[Outcome]:
    for line, item in read_rows(_counted(handle, progress), fmt):
        if isinstance(item, ValueError):
            problems.append(Problem(line, "", str(item)))
            continue
        outcome = parse_item(item, line, problems)
        if outcome is not None:
            yield outcome


def _counted(handle: IO[str], progress: Progress) -> Iterator[str]:
    for line in handle:
        progress.advance(len(line.encode("utf-8")) if not line.isascii() else len(line))
        yield line


def _wire(outcome: Outcome) -> dict[str, Any]:
    """The outcome as the endpoint takes it (CSV's text cells made JSON types)."""
    item: dict[str, Any] = {"churned": outcome.churned, "observed_at": outcome.observed_at}
    if outcome.request_id is not None:
        item["request_id"] = outcome.request_id
        item["row"] = outcome.row
    else:
        item["customer_id"] = outcome.customer_id
    return item


def _post(client: httpx.Client, url: str, chunk: list[dict[str, Any]]) -> OutcomeTally:
    """One chunk; retried on a network failure or a 503 (outcomes are idempotent)."""
    for attempt in range(RETRIES + 1):
        try:
            response = client.post("/outcomes", json=chunk)
        except httpx.HTTPError as exc:
            if attempt == RETRIES:
                raise CommandError(f"cannot post outcomes to {url}: {exc}") from None
        else:
            if response.status_code != 503 or attempt == RETRIES:
                break
        time.sleep(2**attempt)
    if response.status_code == 401:
        raise CommandError(f"the gateway at {url} refused the token in {TOKEN_ENV} (401)")
    if response.status_code == 404:
        raise CommandError(f"the gateway at {url} takes no outcomes: {_detail(response)}")
    if response.status_code != 200:
        raise CommandError(
            f"the gateway at {url} answered {response.status_code}: {_detail(response)}"
        )
    body = response.json()
    tally = OutcomeTally(
        received=body["received"],
        new=body["new"],
        duplicates=body["duplicates"],
        labelled=body["labelled"],
        unmatched=body["unmatched"],
        new_unmatched=body.get("new_unmatched", 0),
        unmatched_keys=list(body.get("unmatched_keys", [])),
    )
    return tally


def _detail(response: httpx.Response) -> str:
    try:
        return str(response.json().get("detail", response.text[:200]))
    except ValueError:
        return response.text[:200]


class Progress:
    """``checking  [#####.....]  52%  521,000 lines`` on stderr (lines of the file read so far,
    a CSV's header included), redrawn at most ten times a second (a terminal or not: a log gets
    the lines, not a flood). The first drawing waits those 0.1 s too, so it never shows the
    count at the first line; a file read quicker shows only its final line."""

    def __init__(self, stream: IO[str], *, enabled: bool = True) -> None:
        self.stream = stream
        self.enabled = enabled
        self.start("", 1)

    def start(self, name: str, total_bytes: int) -> None:
        self.name, self.total = name, max(total_bytes, 1)
        self.bytes, self.lines, self.drawn = 0, 0, time.monotonic()

    def advance(self, size: int) -> None:
        self.bytes += size
        self.lines += 1
        now = time.monotonic()
        if now - self.drawn >= 0.1:
            self.drawn = now
            self._draw()

    def _draw(self, end: str = "\r") -> None:
        if not self.enabled:
            return
        share = min(self.bytes / self.total, 1.0)
        bar = "#" * int(share * 30)
        lines = f"{self.lines:,} line" + ("" if self.lines == 1 else "s")
        self.stream.write(f"{self.name:9} [{bar:30}] {share:4.0%}  {lines}{end}")
        self.stream.flush()

    def done(self) -> None:
        self._draw(end="\n")

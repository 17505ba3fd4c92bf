"""Before a rollout starts: is every gateway judged serving the routing file the controller edits?

The controller reads one set of gateways and edits one file. When those are not the same
deployment (another stack on the default port, a second checkout, a mistyped ``--gateway``),
it would judge one gateway's traffic while stepping another file's weights: every verdict
would be about the wrong thing. A gateway's ``GET /routing`` names the revision it serves (the
same sha256 prefix of the file's bytes the routing library computes), so the controller
compares the two before its first step and refuses on a difference. A file saved just before
the start may still be loading (a gateway polls it every half second): the check retries for
a short grace before it refuses.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import httpx

__all__ = ["GRACE_S", "RevisionMismatch", "check_gateways_serve", "served_revision"]

# A gateway's reload interval is 0.5 s by default (a SIGHUP is at once); four of them and a
# slow answer fit in this.
GRACE_S = 3.0
POLL_S = 0.25


class RevisionMismatch(Exception):
    """A gateway serves another routing revision than the file's, or cannot say which."""


def served_revision(client: httpx.Client, gateway: str) -> str:
    """The routing revision ``gateway`` serves, from its ``GET /routing``."""
    url = gateway.rstrip("/") + "/routing"
    try:
        response = client.get(url)
    except httpx.HTTPError as exc:
        raise RevisionMismatch(f"cannot read {url}: {exc or type(exc).__name__}") from None
    try:
        revision = response.json().get("revision") if response.status_code == 200 else None
    except (ValueError, AttributeError):
        revision = None
    if not isinstance(revision, str):
        raise RevisionMismatch(f"{url} answered {response.status_code} with no routing revision")
    return revision


def check_gateways_serve(
    gateways: Sequence[str],
    file_revision: Callable[[], str],
    read_revision: Callable[[str], str],
    *,
    path: str,
    grace_s: float = GRACE_S,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Return once every gateway serves the file's revision; raise RevisionMismatch, saying
    which gateway serves what, when one still does not after ``grace_s``."""
    deadline = clock() + grace_s
    while True:
        expected = file_revision()
        wrong: list[str] = []
        for gateway in gateways:
            try:
                served = read_revision(gateway)
            except RevisionMismatch as exc:
                wrong.append(str(exc))
                continue
            if served != expected:
                wrong.append(f"{gateway} serves routing revision {served}")
        if not wrong:
            return
        if clock() >= deadline:
            raise RevisionMismatch(
                f"{'; '.join(wrong)}, but {path} is revision {expected}: the controller would "
                f"judge one deployment while editing another's routing. Point --gateway (or "
                f"$STREAMFLOW_URL) at the gateway that serves {path}, or --file at the file it "
                f"serves"
            )
        sleep(POLL_S)

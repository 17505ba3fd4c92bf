"""Start, watch, restart and stop the stack's processes. Knows nothing of models or routing."""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from stack.plan import ProcessSpec

__all__ = ["StopRequest", "Supervisor", "sleep_unless_stopped"]

Say = Callable[[str], None]


class StopRequest:
    """Installed as the SIGINT/SIGTERM handler: it only counts, and loops poll it.

    Nothing heavier runs inside a handler: raising there could interrupt Popen between fork
    and recording the pid, leaving a child nobody stops; taking a lock there can deadlock.
    """

    def __init__(self) -> None:
        self.count = 0
        self.signum: int | None = None

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.count += 1
        self.signum = signum

    @property
    def requested(self) -> bool:
        return self.count > 0


def sleep_unless_stopped(seconds: float, stop: StopRequest) -> None:
    """Sleep in short slices so a stop request is acted on within ~0.1 s."""
    deadline = time.monotonic() + seconds
    while not stop.requested and (left := deadline - time.monotonic()) > 0:
        time.sleep(min(0.1, left))


@dataclass(slots=True)
class _Child:
    spec: ProcessSpec
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    restart_at: float | None = None
    quick_exits: int = 0  # consecutive exits soon after start; drives the back-off
    restarts: int = 0


class Supervisor:
    """Keeps every process of the stack running until asked to stop.

    A process that exits is reported and started again after a back-off that grows while it
    keeps crashing soon after start (1 s, 2 s, 4 s ... capped), so a broken replica neither
    takes the stack down nor spins the CPU.
    """

    def __init__(
        self,
        specs: Iterable[ProcessSpec],
        *,
        stop: StopRequest,
        say: Say,
        status_file: Path | None = None,
        backoff_s: float = 1.0,
        max_backoff_s: float = 10.0,
        stable_after_s: float = 30.0,
    ) -> None:
        self._children = [_Child(spec) for spec in specs]
        self._stop = stop
        self._say = say
        self._status_file = status_file
        self._backoff_s = backoff_s
        self._max_backoff_s = max_backoff_s
        self._stable_after_s = stable_after_s

    def start_all(self) -> None:
        for child in self._children:
            self._start(child)
        self._write_status()

    def check(self) -> None:
        """Reap exited processes and restart those whose back-off has passed."""
        now = time.monotonic()
        changed = False
        for child in self._children:
            if child.proc is not None and (code := child.proc.poll()) is not None:
                self._on_exit(child, code, now)
                changed = True
            due = child.restart_at is not None and now >= child.restart_at
            if due and not self._stop.requested:
                child.restarts += 1
                self._start(child)
                changed = True
        if changed:
            self._write_status()

    def run(self, poll_s: float = 0.25) -> None:
        """Supervise in the foreground until a stop is requested."""
        while not self._stop.requested:
            self.check()
            sleep_unless_stopped(poll_s, self._stop)

    def stop_all(self, grace_s: float = 15.0) -> None:
        """SIGTERM every live process, SIGKILL what is still running after grace_s.

        A further Ctrl-C while waiting skips the rest of the grace period.
        """
        signals_before = self._stop.count
        running = [c for c in self._children if c.proc is not None and c.proc.poll() is None]
        if running:
            self._say(f"stopping {len(running)} process(es) ...")
        for child in running:
            assert child.proc is not None
            with contextlib.suppress(ProcessLookupError):
                child.proc.terminate()
        deadline = time.monotonic() + grace_s
        while (
            any(c.proc.poll() is None for c in running if c.proc)
            and time.monotonic() < deadline
            and self._stop.count == signals_before
        ):
            time.sleep(0.1)
        for child in running:
            assert child.proc is not None
            if child.proc.poll() is None:
                self._say(f"{child.spec.name} did not stop in time; killing pid {child.proc.pid}")
                with contextlib.suppress(ProcessLookupError):
                    child.proc.kill()
                child.proc.wait()
        for child in self._children:
            child.restart_at = None
        if self._status_file is not None:
            self._status_file.unlink(missing_ok=True)

    def pid_of(self, name: str) -> int | None:
        for child in self._children:
            if child.spec.name == name and child.proc is not None and child.proc.poll() is None:
                return child.proc.pid
        return None

    # --- internals ------------------------------------------------------------------------------

    def _start(self, child: _Child) -> None:
        child.restart_at = None
        child.started_at = time.monotonic()
        spec = child.spec
        try:
            child.proc = subprocess.Popen(
                spec.argv,
                env={**os.environ, **spec.env},
                stdin=subprocess.DEVNULL,
                # Same process group as the launcher, so a terminal Ctrl-C reaches everyone; the
                # parent-death signal covers the launcher itself being SIGKILLed.
                preexec_fn=_die_with_parent(),
            )
        except OSError as exc:
            child.proc = None
            self._schedule_restart(child, f"{spec.name} could not start: {exc}")

    def _on_exit(self, child: _Child, code: int, now: float) -> None:
        assert child.proc is not None
        pid = child.proc.pid
        child.proc = None
        if self._stop.requested:
            return  # it is going down with the rest of the stack; nothing to report
        lived = now - child.started_at
        child.quick_exits = 0 if lived >= self._stable_after_s else child.quick_exits
        where = f"{child.spec.name} (pid {pid}, {child.spec.address})"
        self._schedule_restart(child, f"{where} exited with {_describe_exit(code)}")

    def _schedule_restart(self, child: _Child, reason: str) -> None:
        child.quick_exits += 1
        delay = min(self._backoff_s * 2 ** (child.quick_exits - 1), self._max_backoff_s)
        child.restart_at = time.monotonic() + delay
        self._say(f"{reason}; restarting in {delay:g} s")

    def _write_status(self) -> None:
        """Pids and addresses as JSON, for tools and tests that need to find a process."""
        if self._status_file is None:
            return
        status = {
            "launcher_pid": os.getpid(),
            "processes": [
                {
                    "name": c.spec.name,
                    "version": c.spec.version,
                    "address": c.spec.address,
                    "pid": c.proc.pid if c.proc is not None else None,
                    "restarts": c.restarts,
                }
                for c in self._children
            ],
        }
        # Write then rename, so a reader never sees half a file.
        tmp = self._status_file.with_name(self._status_file.name + ".tmp")
        tmp.write_text(json.dumps(status, indent=2) + "\n")
        os.replace(tmp, self._status_file)


def _describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"code {code}"


_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> Callable[[], None] | None:
    """On Linux, a pre-exec hook that has the kernel SIGTERM the child when the launcher dies,
    even by SIGKILL, so no replica is left holding its port. Elsewhere: None.

    Safe here because the launcher runs no other threads when it forks.
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None
    parent = os.getpid()

    def hook() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        # The launcher may have died between fork and prctl: then no signal would ever come.
        if os.getppid() != parent:
            os.kill(os.getpid(), signal.SIGTERM)

    return hook

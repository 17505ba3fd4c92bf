"""wrk and nginx: found on PATH, or installed from the Debian archive when missing."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

# Debian packages that provide each tool, in order of preference.
PACKAGES: dict[str, tuple[str, ...]] = {"wrk": ("wrk",), "nginx": ("nginx-light", "nginx")}
SBIN = ("/usr/sbin", "/sbin", "/usr/local/sbin")
POLICY_RC = Path("/usr/sbin/policy-rc.d")


class ToolError(Exception):
    """A tool is missing and cannot be installed here; the message says why."""


@dataclass(frozen=True)
class Tools:
    wrk: str
    nginx: str


def find(name: str) -> str | None:
    """The tool's path; nginx lives in sbin, which a non-root PATH often lacks."""
    found = shutil.which(name)
    if found:
        return found
    for directory in SBIN:
        candidate = Path(directory) / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def ensure_tools(*, install: bool = True, say: Callable[[str], object] = print) -> Tools:
    """Both tools, installing the missing ones with apt-get (root only)."""
    missing = [name for name in PACKAGES if find(name) is None]
    if missing and install:
        _apt_install(missing, say)
    paths = {name: find(name) for name in PACKAGES}
    found = {name: path for name, path in paths.items() if path is not None}
    still = [name for name in paths if name not in found]
    if still:
        raise ToolError(f"{', '.join(still)} not found and not installed")
    return Tools(wrk=found["wrk"], nginx=found["nginx"])


def _apt_install(missing: list[str], say: Callable[[str], object]) -> None:
    apt = shutil.which("apt-get")
    if apt is None:
        raise ToolError(f"{', '.join(missing)} missing and there is no apt-get to install them")
    if os.geteuid() != 0:
        raise ToolError(
            f"{', '.join(missing)} missing; installing needs root "
            f"(sudo apt-get install {' '.join(PACKAGES[n][0] for n in missing)})"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    say(f"installing {', '.join(missing)} with apt-get ...")
    _run([apt, "update", "-qq"], env)
    # The nginx package would start a system nginx listening on port 80: forbid service starts
    # during the install (the Docker convention), unless a policy already exists.
    added_policy = False
    if not POLICY_RC.exists():
        POLICY_RC.write_text("#!/bin/sh\nexit 101\n")
        POLICY_RC.chmod(0o755)
        added_policy = True
    try:
        for name in missing:
            for package in PACKAGES[name]:
                result = subprocess.run(
                    [apt, "install", "-y", "-qq", "--no-install-recommends", package],
                    env=env,
                    capture_output=True,
                    text=True,
                    check=False,
                )
                if result.returncode == 0:
                    break
            else:
                tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
                raise ToolError(f"apt-get could not install {name}: {' '.join(tail)}")
    finally:
        if added_policy:
            POLICY_RC.unlink(missing_ok=True)


def _run(argv: list[str], env: dict[str, str]) -> None:
    result = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
        raise ToolError(f"{' '.join(argv)} failed: {' '.join(tail)}")

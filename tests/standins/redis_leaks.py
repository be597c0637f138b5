"""Which redis-server/valkey-server processes a test session started and left running: those working in
a folder under the session's temporary root (pytest's basetemp, where the session also points
``tempfile``). A server's working directory is its data folder, and it stays readable in
``/proc/<pid>/cwd`` after its parent died and even after the folder was deleted. Linux only: elsewhere
nothing is found (there is no /proc to look in)."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

from bot.embedded_redis import SERVER_NAMES

GRACE_S = 2.0  # a server told to stop just before the session ended gets this long to exit


def servers_under(root: Path) -> dict[int, str]:
    """``{pid: "command line (in folder)"}`` of the live Redis servers working under ``root``."""
    prefix = str(root.resolve()) + os.sep
    found = {}
    for proc in Path("/proc").glob("[0-9]*"):
        with contextlib.suppress(OSError, IndexError):
            if (proc / "comm").read_text().strip() not in SERVER_NAMES:
                continue
            if (proc / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                continue  # exited, waiting to be reaped
            cwd = os.readlink(proc / "cwd")
            if cwd.startswith(prefix):
                command = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
                found[int(proc.name)] = f"{command} (in {cwd})"
    return found


def stop_leftover_servers(root: Path) -> list[tuple[int, str]]:
    """Kill the servers still running under ``root`` after a grace period; return what was found."""
    deadline = time.monotonic() + GRACE_S
    while (leftovers := servers_under(root)) and time.monotonic() < deadline:
        time.sleep(0.05)
    for pid in leftovers:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return sorted(leftovers.items())

"""Processes started by the test bed: markers, liveness, termination and the sweep of leftovers.

Every long-running process the test bed starts (Kafka brokers) carries Java system properties in
its command line:

- ``-Dkafka.testbed.dir=DIR``: the cluster directory it belongs to, and
- ``-Dkafka.testbed.owner=PID:START`` (only for processes owned by a test run): the process id and
  start time of the Python process that owns it.

:func:`sweep_stale` finds processes whose owner is gone (a test run that crashed or was killed)
and kills them. Processes of other live test runs and clusters started with ``kafka-local up``
(which have no owner) are never touched.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

MARKER_DIR = "-Dkafka.testbed.dir="
MARKER_OWNER = "-Dkafka.testbed.owner="

_PR_SET_PDEATHSIG = 1


def start_time(pid: int) -> str | None:
    """The start time of ``pid`` in clock ticks since boot (field 22 of /proc/PID/stat)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    return fields[19]


def owner_token(pid: int | None = None) -> str:
    """``PID:START`` of this (or the given) process: survives neither a restart nor pid reuse."""
    pid = os.getpid() if pid is None else pid
    return f"{pid}:{start_time(pid)}"


def owner_alive(token: str) -> bool:
    pid_s, _, start = token.partition(":")
    try:
        pid = int(pid_s)
    except ValueError:
        return False
    return start_time(pid) == start and is_alive(pid)


def is_alive(pid: int) -> bool:
    """True if ``pid`` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2 :].split()[0] not in ("Z", "X")


def cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a]


@dataclass(frozen=True, slots=True)
class MarkedProcess:
    pid: int
    dir: str
    owner: str | None
    argv: tuple[str, ...]


def marked_processes() -> Iterator[MarkedProcess]:
    """Every live process on this machine that carries the test bed's marker."""
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        argv = cmdline(pid)
        dirs = [a[len(MARKER_DIR) :] for a in argv if a.startswith(MARKER_DIR)]
        if not dirs or not is_alive(pid):
            continue
        owners = [a[len(MARKER_OWNER) :] for a in argv if a.startswith(MARKER_OWNER)]
        yield MarkedProcess(pid, dirs[0], owners[0] if owners else None, tuple(argv))


def process_matches(pid: int, cluster_dir: str | os.PathLike[str]) -> bool:
    """True if ``pid`` is alive and is a test-bed process of ``cluster_dir`` (guards pid reuse)."""
    want = MARKER_DIR + str(Path(cluster_dir).resolve())
    return is_alive(pid) and want in cmdline(pid)


def terminate(
    procs: Iterable[int | subprocess.Popen[bytes]], timeout: float = 30.0
) -> dict[int, str]:
    """SIGTERM every process, wait up to ``timeout`` seconds, then SIGKILL what is left.

    ``procs`` are pids or ``Popen`` objects (children are waited for through their ``Popen``, so
    no zombie is left). Returns how each process ended: ``"terminated"``, ``"killed"`` or
    ``"gone"``. Only pass processes you own (check :func:`process_matches` first for bare pids).
    """
    result: dict[int, str] = {}
    waiting: list[int | subprocess.Popen[bytes]] = []
    for proc in procs:
        pid = proc if isinstance(proc, int) else proc.pid
        if not _alive(proc):
            result[pid] = "gone"
            continue
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        waiting.append(proc)
    deadline = time.monotonic() + timeout
    while waiting and time.monotonic() < deadline:
        still = []
        for proc in waiting:
            if _alive(proc):
                still.append(proc)
            else:
                result[proc if isinstance(proc, int) else proc.pid] = "terminated"
        waiting = still
        if waiting:
            time.sleep(0.1)
    for proc in waiting:
        pid = proc if isinstance(proc, int) else proc.pid
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        result[pid] = "killed"
    deadline = time.monotonic() + 10.0
    while any(_alive(p) for p in waiting) and time.monotonic() < deadline:
        time.sleep(0.05)
    return result


def kill(procs: Iterable[int | subprocess.Popen[bytes]], timeout: float = 10.0) -> None:
    """SIGKILL at once (a crash, no clean shut-down) and wait until the processes are gone."""
    targets = list(procs)
    for proc in targets:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc if isinstance(proc, int) else proc.pid, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    while any(_alive(p) for p in targets) and time.monotonic() < deadline:
        time.sleep(0.05)


def _alive(proc: int | subprocess.Popen[bytes]) -> bool:
    if isinstance(proc, int):
        return is_alive(proc)
    return proc.poll() is None


def sweep_stale() -> list[MarkedProcess]:
    """Kill test-bed processes whose owning test run is gone. Returns what was killed."""
    stale = [p for p in marked_processes() if p.owner is not None and not owner_alive(p.owner)]
    if stale:
        terminate([p.pid for p in stale], timeout=5.0)
    return stale


def die_with_parent() -> None:
    """``preexec_fn``: the child gets SIGKILL when the thread that started it exits."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)

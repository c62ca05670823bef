"""Several worker processes under one supervisor: ``kafka-edge run --workers N``.

One Python process relays on one core. The supervisor starts N workers (fresh interpreters
running the same command), each binding every Kafka port with SO_REUSEPORT, so the kernel
spreads new connections across them; they share nothing, like instances behind a balancer.

::

    starting --all workers answer--> serving --SIGTERM/SIGINT--> stopping --all exited--> exit
       |                               |   \\--a worker exits--> restarted after a backoff
       +--a worker fails to start--> stopping (exit 1)      (counted, logged)

The supervisor owns the admin port: /metrics is the sum of every worker's (read over each
worker's local socket; observability/merge.py), /readyz is 200 only when every worker is
running and ready, /healthz answers while the supervisor's loop runs. SIGHUP is forwarded; on
SIGTERM every worker drains (limits.drain_timeout_s) and the exit status is 0 only if all of
them stopped cleanly.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.metrics_core import Metric

from kafka_edge.observability import merge
from kafka_edge.observability.http import (
    NOT_FOUND,
    Page,
    answer_http,
    readiness_page,
    status_json,
    status_page,
)
from kafka_edge.observability.status import StatusSnapshot
from kafka_edge.observability.status import merge as merge_status

if TYPE_CHECKING:
    from kafka_edge.config import Config

log = logging.getLogger("kafka_edge.supervisor")
STARTUP_TIMEOUT_S = 60.0
BACKOFF_FIRST_S = 0.5
BACKOFF_MAX_S = 30.0
STABLE_AFTER_S = 60.0  # a worker up this long resets its slot's backoff


def worker_count(value: str) -> int:
    """``--workers``: a number, or ``auto`` (the CPUs this process may run on)."""
    if value == "auto":
        return len(os.sched_getaffinity(0))
    count = int(value)
    if count < 1:
        raise ValueError("--workers must be at least 1")
    return count


@dataclass(slots=True)
class Slot:
    index: int
    socket_path: str
    process: asyncio.subprocess.Process | None = None
    started_at: float = 0.0
    backoff_s: float = BACKOFF_FIRST_S
    restarts: int = 0
    last_metrics: list[Metric] = field(default_factory=list)


class Supervisor:
    def __init__(self, config: Config, worker_argv: Sequence[str], workers: int) -> None:
        self.config = config
        self.worker_argv = list(worker_argv)  # the command each worker runs (without its socket)
        self.slots: list[Slot] = []
        self.count = workers
        self.stopping = False
        self.retired = merge.Retired()
        self.registry = CollectorRegistry(auto_describe=True)
        self.restarts = Counter(
            "kafka_edge_worker_restarts", "Worker processes that exited and were started again",
            ["reason"], registry=self.registry)
        self.alive = Gauge("kafka_edge_workers", "Worker processes running",
                           registry=self.registry)
        self._runtime = tempfile.mkdtemp(prefix="kafka-edge-")
        self._stop = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._failed_start: int | None = None

    # -- life --------------------------------------------------------------------------------

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop.set)
        loop.add_signal_handler(signal.SIGHUP, self._forward, signal.SIGHUP)
        admin: asyncio.Server | None = None
        try:
            self.slots = [Slot(i, os.path.join(self._runtime, f"worker-{i}.sock"))
                          for i in range(self.count)]
            for slot in self.slots:
                await self._start(slot)
            if not await self._all_answer():
                log.error("a worker did not start; stopping the others")
                return await self._shutdown(failed=True)
            address = self.config.observability.http_address
            if address is not None:
                admin = await asyncio.start_server(
                    lambda r, w: answer_http(r, w, self._page), *address)
            log.info("supervisor ready", extra={"workers": self.count, "pid": os.getpid()})
            await self._stop.wait()
            return await self._shutdown(failed=self._failed_start is not None)
        finally:
            if admin is not None:
                admin.close()
            shutil.rmtree(self._runtime, ignore_errors=True)

    async def _start(self, slot: Slot) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(slot.socket_path)
        slot.process = await asyncio.create_subprocess_exec(
            *self.worker_argv, "--worker-socket", slot.socket_path,
            "--supervisor-pid", str(os.getpid()), stdin=asyncio.subprocess.DEVNULL)
        slot.started_at = time.monotonic()
        self.alive.set(sum(1 for s in self.slots if _running(s)))
        log.info("worker started", extra={"worker": slot.index, "worker_pid": slot.process.pid})
        task = asyncio.get_running_loop().create_task(self._watch(slot, slot.process))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _watch(self, slot: Slot, process: asyncio.subprocess.Process) -> None:
        """Wait for a worker to exit; start it again unless the supervisor is stopping."""
        code = await process.wait()
        self.alive.set(sum(1 for s in self.slots if _running(s)))
        if self.stopping:
            return
        if slot.last_metrics:
            self.retired.add(slot.last_metrics)
            slot.last_metrics = []
        reason = f"signal {-code}" if code < 0 else f"exit status {code}"
        if time.monotonic() - slot.started_at >= STABLE_AFTER_S:
            slot.backoff_s = BACKOFF_FIRST_S
        delay = slot.backoff_s
        slot.backoff_s = min(BACKOFF_MAX_S, slot.backoff_s * 2)
        slot.restarts += 1
        self.restarts.labels("signal" if code < 0 else "exit").inc()
        log.error("worker exited (%s); starting it again in %.1f s", reason, delay,
                  extra={"worker": slot.index, "worker_pid": process.pid,
                         "restarts": slot.restarts})
        await asyncio.sleep(delay)
        if not self.stopping:
            await self._start(slot)

    async def _all_answer(self) -> bool:
        """Wait until every worker serves its local socket; False if one exited meanwhile."""
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        pending = list(self.slots)
        while pending and time.monotonic() < deadline:
            for slot in list(pending):
                if slot.process is not None and slot.process.returncode is not None:
                    self._failed_start = slot.process.returncode
                    return False
                if await _ask(slot.socket_path, "/healthz") is not None:
                    pending.remove(slot)
            await asyncio.sleep(0.1)
        return not pending

    def _forward(self, signum: int) -> None:
        for slot in self.slots:
            if slot.process is not None and slot.process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    slot.process.send_signal(signum)

    async def _shutdown(self, *, failed: bool) -> int:
        """Every worker drains and exits; the status is 0 only if all stopped cleanly."""
        self.stopping = True
        log.info("supervisor stopping: workers drain", extra={"workers": self.count})
        self._forward(signal.SIGTERM)
        deadline = time.monotonic() + self.config.limits.drain_timeout_s + 10
        status = 1 if failed else 0
        codes: list[int] = []
        for slot in self.slots:
            process = slot.process
            if process is None:
                continue
            try:
                code = await asyncio.wait_for(process.wait(), max(0.1, deadline - time.monotonic()))
            except TimeoutError:
                log.error("worker did not stop in time; killed", extra={"worker": slot.index})
                process.kill()
                code = await process.wait()
            codes.append(code)
            # -SIGTERM: the worker had finished (its handler gone) when the SIGTERM forwarded
            # here reached it, after the one sent to the whole process group (a terminal, a
            # test harness) had made it drain
            if code not in (0, -signal.SIGTERM):
                status = 1
        for task in list(self._tasks):
            task.cancel()
        self.alive.set(0)
        log.info("supervisor stopped", extra={"status": status, "worker_exits": codes})
        return status

    # -- admin pages ---------------------------------------------------------------------------

    async def _page(self, path: str) -> Page:
        if path == "/healthz":
            return 200, "text/plain", b"ok\n"
        if path == "/metrics":
            return 200, "text/plain; version=0.0.4; charset=utf-8", await self.metrics()
        if path == "/readyz":
            return readiness_page(*await self.readiness())
        if path in ("/", "/status.json"):
            snapshot = await self.status()
            if snapshot is None:
                return 503, "text/plain", b"no worker answered\n"
            return status_page(snapshot) if path == "/" else status_json(snapshot)
        return NOT_FOUND

    async def status(self) -> StatusSnapshot | None:
        """Every answering worker's status snapshot, merged (observability/status.py)."""
        answers = await asyncio.gather(*(_ask(s.socket_path, "/status.json")
                                         for s in self.slots))
        snapshots = []
        for answer in answers:
            if answer is not None and answer[0] == 200:
                try:
                    snapshots.append(StatusSnapshot.from_json(answer[1]))
                except ValueError as exc:
                    log.error("a worker's status did not decode: %s", exc)
        return merge_status(snapshots) if snapshots else None

    async def metrics(self) -> bytes:
        answers = await asyncio.gather(*(_ask(s.socket_path, "/metrics") for s in self.slots))
        live = []
        for slot, answer in zip(self.slots, answers, strict=True):
            if answer is not None and answer[0] == 200:
                slot.last_metrics = merge.parse(answer[1].decode())
                live.append(slot.last_metrics)
        own = list(self.registry.collect())
        return merge.render(merge.merge([self.retired.families, *live, own]))

    async def readiness(self) -> tuple[bool, dict[str, object]]:
        answers = await asyncio.gather(*(_ask(s.socket_path, "/readyz") for s in self.slots))
        workers: list[dict[str, object]] = []
        ready = not self.stopping
        for slot, answer in zip(self.slots, answers, strict=True):
            entry: dict[str, object] = {"worker": slot.index, "restarts": slot.restarts}
            if answer is None:
                entry.update(ready=False, reason="not running or not answering")
            else:
                with contextlib.suppress(ValueError):
                    entry.update(json.loads(answer[1]))
                entry["ready"] = answer[0] == 200
            ready = ready and bool(entry["ready"])
            workers.append(entry)
        reasons = sorted({str(w.get("reason")) for w in workers if not w["ready"]})
        detail: dict[str, object] = {"draining": self.stopping, "workers": workers}
        if self.stopping:
            detail["reason"] = "draining: the instance is stopping"
        elif not ready:
            detail["reason"] = "; ".join(reasons)
        return ready, detail


def _running(slot: Slot) -> bool:
    return slot.process is not None and slot.process.returncode is None


async def _ask(path: str, page: str, timeout: float = 5.0) -> tuple[int, bytes] | None:
    """GET ``page`` from a worker's local socket: (status, body), or None if it does not answer."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_unix_connection(path), timeout)
    except (OSError, TimeoutError):
        return None
    try:
        writer.write(f"GET {page} HTTP/1.1\r\nHost: worker\r\n\r\n".encode())
        raw = await asyncio.wait_for(reader.read(), timeout)
    except (OSError, TimeoutError):
        return None
    finally:
        writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    try:
        status = int(head.split(b" ", 2)[1])
    except (IndexError, ValueError):
        return None
    return status, body


def run_supervised(config: Config, worker_argv: Sequence[str], workers: int) -> int:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on every supported platform
        return asyncio.run(Supervisor(config, worker_argv, workers).run())
    code = uvloop.run(Supervisor(config, worker_argv, workers).run())
    sys.stdout.flush()
    return code

"""Test helpers around a real kafka-edge process: start it from a config, wait until ready,
stop it, read its log and metrics; plus a recording TCP relay standing for a load balancer.

Every process :meth:`EdgeProcess.stop` stops is scraped first: the metric families that had a
non-zero sample are added to :data:`MOVED` (the whole pytest session's, read by
tests/e2e/test_zz_metrics_moved.py), and every scrape, successful or not, to :data:`SCRAPES`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import http.client
import os
import random
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
KAFKA_EDGE = [sys.executable, "-m", "kafka_edge.cli"]

# metric family -> the tests whose kafka-edge processes had a non-zero sample of it when stopped
MOVED: dict[str, set[str]] = {}
# (test, edge name, None when /metrics was read, else why not): every process stop() stopped
SCRAPES: list[tuple[str, str, str | None]] = []


def moved_families(exposition: str) -> set[str]:
    """The metric families with a non-zero sample in a /metrics text. ``*_created`` samples
    (when a labelled child was first used: never zero) do not count; nor does a histogram's
    ``le`` bound, which is a label."""
    from prometheus_client.parser import text_string_to_metric_families

    moved = set()
    for family in text_string_to_metric_families(exposition):
        if any(s.value != 0 and not s.name.endswith("_created") for s in family.samples):
            moved.add(family.name)
    return moved


def _current_test() -> str:
    current = os.environ.get("PYTEST_CURRENT_TEST", "(outside a test)")
    return current.rsplit(" (", 1)[0]  # without " (setup)" / " (call)" / " (teardown)"


_handed_out: list[range] = []  # blocks this process gave out, most recent last


def free_port_block(count: int, host: str = "127.0.0.1") -> int:
    """First port of ``count`` consecutive ports that are free on ``host`` right now, and that
    overlap no block this process handed out recently (a test may pick two blocks before it
    binds either)."""
    rng = random.Random(os.getpid() ^ time.monotonic_ns())
    for _ in range(200):
        base = rng.randrange(20_000, 60_000 - count)
        if any(base < r.stop and r.start < base + count for r in _handed_out):
            continue
        socks: list[socket.socket] = []
        try:
            for port in range(base, base + count):
                s = socket.socket()
                socks.append(s)
                s.bind((host, port))
            _handed_out.append(range(base, base + count))
            del _handed_out[:-200]
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError(f"no block of {count} free ports on {host}")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def read_frame(sock: socket.socket) -> bytes:
    """One size-prefixed Kafka frame (without its size) from a blocking socket."""

    def exact(n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("closed by the proxy")
            buf += chunk
        return buf

    (size,) = struct.unpack(">i", exact(4))
    return exact(size)


def wait_until(check: Callable[[], bool], timeout: float = 15.0) -> bool:
    """Whether ``check()`` came true within ``timeout`` seconds (asked every 0.1 s)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


API_VERSIONS_V0 = struct.pack(">ihhih", 10, 18, 0, 1, 0)  # correlation id 1, no client id


def api_versions(sock: socket.socket) -> None:
    """One ApiVersions v0 exchange on ``sock``: a broker's answer came back through the edge."""
    sock.sendall(API_VERSIONS_V0)
    assert struct.unpack_from(">ih", read_frame(sock)) == (1, 0)


def _workers(args: Sequence[str]) -> int:
    """How many workers ``kafka-edge run`` starts with ``args`` (``--workers N``, ``=N`` or
    ``auto``, as the command line reads them)."""
    value = "1"
    for i, arg in enumerate(args):
        if arg == "--workers" and i + 1 < len(args):
            value = args[i + 1]
        elif arg.startswith("--workers="):
            value = arg.partition("=")[2]
    return len(os.sched_getaffinity(0)) if value == "auto" else int(value)


class EdgeProcess:
    """A kafka-edge process run from a YAML config written to ``workdir``."""

    def __init__(self, config: Mapping[str, Any], workdir: Path, *, name: str = "edge",
                 netns: str | None = None, env: Mapping[str, str] | None = None,
                 args: Sequence[str] = ()) -> None:
        self.workdir = workdir
        self.name = name
        self.netns = netns
        self.config = dict(config)
        obs = dict(self.config.get("observability") or {})
        if "http_bind" not in obs:
            obs["http_bind"] = f"127.0.0.1:{free_port()}"
        obs.setdefault("log_level", "info")
        self.config["observability"] = obs
        self.config_path = workdir / f"{name}.yaml"
        self.log_path = workdir / f"{name}.log"
        self.env = dict(env or {})
        self.args = list(args)
        self.proc: subprocess.Popen[bytes] | None = None
        # with --workers N (N > 1) the supervisor says it once every worker answers
        self.ready_line = b"supervisor ready" if _workers(self.args) > 1 else b"kafka-edge ready"
        self.started_at = 0.0
        self.ready_after: float | None = None

    @property
    def http(self) -> str:
        return f"http://{self.config['observability']['http_bind']}"

    def start(self, timeout: float = 20.0) -> EdgeProcess:
        self.config_path.write_text(yaml.safe_dump(self.config, sort_keys=False))
        argv = [*KAFKA_EDGE, "run", "--config", str(self.config_path), *self.args]
        if self.netns:
            argv = ["ip", "netns", "exec", self.netns, *argv]
        env = {**os.environ, "PYTHONPATH": str(REPO / "src"), **self.env}
        self.started_at = time.monotonic()
        # a restart appends to the same log: only this process's lines say it is ready
        log_start = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env,
                                         start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"kafka-edge exited with {self.proc.returncode}:\n{self.log()}")
            if self.ready_line in self.log_path.read_bytes()[log_start:]:
                self.ready_after = time.monotonic() - self.started_at
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"kafka-edge not ready after {timeout}s:\n{self.log()}")

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def metrics(self) -> str:
        return self.get("/metrics")[1]

    def get(self, path: str) -> tuple[int, str]:
        """GET a path of the health endpoint (from inside the namespace, if any)."""
        if self.netns:
            code = ("import sys, urllib.request, urllib.error\n"
                    "try:\n r = urllib.request.urlopen(sys.argv[1], timeout=5)\n"
                    "except urllib.error.HTTPError as e:\n r = e\n"
                    "print(r.status); print(r.read().decode(), end='')")
            out = subprocess.run(["ip", "netns", "exec", self.netns, sys.executable, "-c", code,
                                  self.http + path], capture_output=True, text=True, check=True,
                                 timeout=30)
            status, _, body = out.stdout.partition("\n")
            return int(status), body
        try:
            with urllib.request.urlopen(self.http + path, timeout=5) as resp:
                return int(resp.status), str(resp.read().decode())
        except urllib.error.HTTPError as exc:
            return int(exc.code), str(exc.read().decode())

    def metric(self, name: str, **labels: str) -> float:
        """Sum of the samples of ``name`` whose labels include ``labels``."""
        total = 0.0
        for line in self.metrics().splitlines():
            if not line.startswith(name) or line.startswith("#"):
                continue
            head, _, value = line.rpartition(" ")
            if all(f'{k}="{v}"' in head for k, v in labels.items()):
                total += float(value)
        return total

    def record_metrics(self) -> None:
        """Scrape /metrics into :data:`MOVED` and :data:`SCRAPES`; never raises (the endpoint
        may be disabled, or the process dead or stuck). In a network namespace the scrape runs
        inside it (``get``)."""
        where = _current_test()
        if self.config["observability"].get("http_bind") is None:
            SCRAPES.append((where, self.name, "observability.http_bind disabled"))
            return
        if self.proc is None or self.proc.poll() is not None:
            SCRAPES.append((where, self.name, "the process had already exited"))
            return
        try:
            status, body = self.get("/metrics")
            if status != 200:
                raise ValueError(f"HTTP {status}")
            moved = moved_families(body)
        except (OSError, ValueError, http.client.HTTPException,
                subprocess.SubprocessError) as exc:
            SCRAPES.append((where, self.name, f"scrape failed: {exc!r}"))
            return
        SCRAPES.append((where, self.name, None))
        for family in moved:
            MOVED.setdefault(family, set()).add(where)

    def signal(self, sig: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)

    def kill(self) -> None:
        self.signal(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(10)

    def stop(self, timeout: float = 15.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.record_metrics()
            self.signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.proc.returncode

    def __enter__(self) -> EdgeProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def port_routing_config(*, upstream: Sequence[str], bind_host: str, base: int,
                        advertised_host: str | None = None, advertised_port_base: int | None = None,
                        node_ids: tuple[int, int] = (0, 7), upstream_tls: Mapping[str, Any] | None
                        = None, name: str = "test", **extra: Any) -> dict[str, Any]:
    """A one-cluster port-per-broker config: bootstrap on ``base``, node N on base + 1 + N - min."""
    routing: dict[str, Any] = {
        "bind_host": bind_host,
        "bootstrap_port": base,
        "broker_port_base": base + 1,
        "node_id_min": node_ids[0],
        "node_id_max": node_ids[1],
        "advertised_host": advertised_host or bind_host,
    }
    if advertised_port_base is not None:
        routing["advertised_port_base"] = advertised_port_base
    upstream_cfg: dict[str, Any] = {"bootstrap_servers": list(upstream)}
    if upstream_tls is not None:
        upstream_cfg["tls"] = dict(upstream_tls)
    cluster: dict[str, Any] = {"name": name, "upstream": upstream_cfg, "port_routing": routing}
    cluster.update(extra)
    return {"clusters": [cluster]}


class RecordingRelay:
    """A plain TCP relay (a load balancer stand-in) that keeps every byte sent to clients.

    ``routes`` maps a listen port to a target (host, port). Runs its own event loop in a thread.
    """

    def __init__(self, listen_host: str, routes: Mapping[int, tuple[str, int]]) -> None:
        self.listen_host = listen_host
        self.routes = dict(routes)
        self.to_client: list[bytearray] = []
        self.to_server: list[bytearray] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._servers: list[asyncio.Server] = []
        self._writers: set[asyncio.StreamWriter] = set()

    def __enter__(self) -> RecordingRelay:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def client_bytes(self) -> bytes:
        return b"".join(bytes(b) for b in self.to_client)

    async def _start(self) -> None:
        for port, target in self.routes.items():
            server = await asyncio.start_server(
                functools.partial(self._pipe, target=target), self.listen_host, port)
            self._servers.append(server)

    async def _stop(self) -> None:
        for server in self._servers:
            server.close()
        for w in list(self._writers):
            w.close()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    target: tuple[str, int]) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*target)
        except OSError:
            writer.close()
            return
        down, up = bytearray(), bytearray()
        self.to_client.append(down)
        self.to_server.append(up)
        self._writers.update((writer, up_writer))

        async def copy(src: asyncio.StreamReader, dst: asyncio.StreamWriter, log: bytearray
                       ) -> None:
            with contextlib.suppress(OSError, ConnectionError):
                while data := await src.read(65536):
                    log += data
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(copy(reader, up_writer, up), copy(up_reader, writer, down))
        self._writers.difference_update((writer, up_writer))


@contextlib.contextmanager
def edge(config: Mapping[str, Any], workdir: Path, **kwargs: Any) -> Iterator[EdgeProcess]:
    proc = EdgeProcess(config, workdir, **kwargs)
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()

"""Measurements: Apache Kafka's perf tools, /proc accounting, a minimal Kafka wire client.

- :func:`producer_perf` / :func:`consumer_perf` run ``org.apache.kafka.tools.ProducerPerformance``
  and ``org.apache.kafka.tools.ConsumerPerformance`` from the Kafka jars and parse their summary.
- :class:`ProcTree` reads CPU time and memory of a proxy process and all its descendants.
- :func:`metadata_round_trip` (readiness) and :func:`hold_idle_connections` (idle memory) speak
  just enough of the Kafka protocol: ApiVersions v0 and a non-flexible Metadata request.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import socket
import ssl
import struct
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

CLIENT_ID = b"kafka-edge-bench"
API_VERSIONS = 18
METADATA = 3
CLK_TCK = os.sysconf("SC_CLK_TCK")
WARMUP_SHARE = 0.2  # of a producer run's records, left out of its figures


class MeasureError(RuntimeError):
    """A measurement failed; the message is the reason given in the results."""


# --------------------------------------------------------------------------------------------
# Apache Kafka perf tools


@dataclass(frozen=True)
class ProducerResult:
    records: int  # steady-state records (after the warm-up)
    rec_s: float
    mb_s: float  # the tool's MB: 1024 * 1024 bytes
    avg_ms: float
    max_ms: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    p999_ms: float
    errors: int


@dataclass(frozen=True)
class ConsumerResult:
    records: int
    mb: float
    mb_s: float  # fetch.MB.sec: consumed MB over the fetch time (group join excluded)
    rec_s: float
    elapsed_s: float


_PRODUCER_SUMMARY = re.compile(
    r"(\d+)(?: steady state)? records sent, ([\d.]+) records/sec \(([\d.]+) MB/sec\), "
    r"([\d.]+) ms avg latency, ([\d.]+) ms max latency, ([\d.]+) ms 50th, "
    r"([\d.]+) ms 95th, ([\d.]+) ms 99th, ([\d.]+) ms 99\.9th"
)


@dataclass(frozen=True)
class KafkaTools:
    """How to start the Kafka command-line tools: JVM and class path of the Kafka jars."""

    libs: Path
    workdir: Path
    heap: str = "768m"

    def java(self, main: str, args: list[str]) -> list[str]:
        return ["java", f"-Xmx{self.heap}", "-Xms256m", "-XX:+UseParallelGC",
                "-Djava.awt.headless=true", "-cp", str(self.libs / "*"), main, *args]

    def properties(self, name: str, props: Mapping[str, str]) -> Path:
        path = self.workdir / f"{name}.properties"
        path.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
        return path

    def run(self, name: str, argv: list[str], timeout: float) -> str:
        log = self.workdir / f"{name}.log"
        start = time.monotonic()
        with log.open("wb") as out:
            try:
                proc = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, timeout=timeout, check=False)
            except subprocess.TimeoutExpired:
                raise MeasureError(f"{name}: no result after {timeout:.0f} s "
                                   f"(see {log})") from None
        text = log.read_text(errors="replace")
        if proc.returncode != 0:
            raise MeasureError(f"{name}: exit {proc.returncode} after "
                               f"{time.monotonic() - start:.0f} s: {_last_error(text)}")
        return text


def _last_error(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for ln in reversed(lines):
        if "Exception" in ln or "ERROR" in ln or "Error" in ln:
            return ln[:300]
    return lines[-1][:300] if lines else "no output"


def producer_perf(tools: KafkaTools, name: str, *, bootstrap: str, topic: str, records: int,
                  record_size: int, throughput: float, client: Mapping[str, str],
                  timeout: float) -> ProducerResult:
    """ProducerPerformance with acks=all; ``throughput`` -1 means as fast as possible.

    The first ``warmup`` share of the records warms up the JVMs (client and proxy) and is left
    out of the figures: the tool's steady-state summary is what is returned."""
    config = tools.properties(name, client)
    warmup = int(records * WARMUP_SHARE)
    argv = tools.java("org.apache.kafka.tools.ProducerPerformance", [
        "--bootstrap-server", bootstrap, "--topic", topic, "--num-records", str(records),
        "--record-size", str(record_size), "--throughput", str(int(throughput)),
        "--command-config", str(config), "--command-property", "acks=all",
        f"client.id={name}", *(["--warmup-records", str(warmup)] if warmup else []),
    ])
    text = tools.run(name, argv, timeout)
    found = _PRODUCER_SUMMARY.findall(text)
    if not found:
        raise MeasureError(f"{name}: no summary line: {_last_error(text)}")
    errors = text.count("Exception")
    if errors:
        raise MeasureError(f"{name}: {errors} send errors, first: {_first_exception(text)}")
    f = found[-1]
    return ProducerResult(
        records=int(f[0]), rec_s=float(f[1]), mb_s=float(f[2]), avg_ms=float(f[3]),
        max_ms=float(f[4]), p50_ms=float(f[5]), p95_ms=float(f[6]), p99_ms=float(f[7]),
        p999_ms=float(f[8]), errors=errors,
    )


@dataclass(frozen=True)
class LatencyResult:
    records: int  # measured records (after the warm-up)
    rate: float  # achieved records/s
    p50_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float


LATENCY_PROBE = Path(__file__).resolve().parent / "LatencyProbe.java"


def latency_probe(tools: KafkaTools, name: str, *, bootstrap: str, topic: str, records: int,
                  record_size: int, rate: float, client: Mapping[str, str],
                  timeout: float) -> LatencyResult:
    """Send-to-acknowledgement latency at a fixed rate, in microseconds (bench/LatencyProbe.java:
    the Java producer with acks=all, as ProducerPerformance, whose latencies are whole ms)."""
    config = tools.properties(name, client)
    argv = tools.java(str(LATENCY_PROBE), [
        "--bootstrap-server", bootstrap, "--topic", topic, "--num-records", str(records),
        "--warmup-records", str(int(records * WARMUP_SHARE)), "--rate", str(rate),
        "--record-size", str(record_size), "--command-config", str(config),
    ])
    text = tools.run(name, argv, timeout)
    lines = [ln for ln in text.splitlines() if ln.startswith('{"records"')]
    if not lines:
        raise MeasureError(f"{name}: no result line: {_last_error(text)}")
    doc = json.loads(lines[-1])
    if doc["errors"]:
        raise MeasureError(f"{name}: {doc['errors']} send errors, first: {doc['first_error']}")
    return LatencyResult(records=doc["records"], rate=doc["rate"], p50_ms=doc["p50_ms"],
                         p99_ms=doc["p99_ms"], p999_ms=doc["p999_ms"], max_ms=doc["max_ms"])


def _first_exception(text: str) -> str:
    for ln in text.splitlines():
        if "Exception" in ln:
            return ln.strip()[:300]
    return ""


def consumer_perf(tools: KafkaTools, name: str, *, bootstrap: str, topic: str, records: int,
                  client: Mapping[str, str], timeout: float) -> ConsumerResult:
    """ConsumerPerformance reading ``records`` records from the start of ``topic``."""
    config = tools.properties(name, {**client, "auto.offset.reset": "earliest"})
    argv = tools.java("org.apache.kafka.tools.ConsumerPerformance", [
        "--bootstrap-server", bootstrap, "--topic", topic, "--num-records", str(records),
        "--group", name, "--timeout", "30000", "--command-config", str(config),
        "--command-property", f"client.id={name}",
    ])
    text = tools.run(name, argv, timeout)
    # start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec,
    # rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec
    rows = [ln.split(", ") for ln in text.splitlines() if ln.count(", ") == 9]
    rows = [r for r in rows if not r[0].startswith("start.time")]
    if not rows:
        raise MeasureError(f"{name}: no summary line: {_last_error(text)}")
    r = rows[-1]
    consumed = int(r[4])
    if consumed < records:
        raise MeasureError(f"{name}: consumed {consumed} of {records} records: "
                           f"{_last_error(text)}")
    fetch_ms = float(r[7])
    return ConsumerResult(records=consumed, mb=float(r[2]), mb_s=float(r[8]),
                          rec_s=float(r[9]), elapsed_s=fetch_ms / 1000)


# --------------------------------------------------------------------------------------------
# /proc accounting of a process and its descendants


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2:].split()


def _children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            fields = _stat_fields(int(entry.name))
            if fields is not None:
                children.setdefault(int(fields[1]), []).append(int(entry.name))
    return children


def _status_kib(pid: int, key: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


@dataclass(frozen=True)
class ProcTree:
    """A proxy's process and, at each reading, every descendant it has then (workers)."""

    pid: int

    def pids(self) -> list[int]:
        children = _children_map()
        out, todo = [], [self.pid]
        while todo:
            pid = todo.pop()
            out.append(pid)
            todo.extend(children.get(pid, []))
        return out

    def cpu_seconds(self) -> float:
        """utime + stime of the tree, plus that of reaped children (cutime + cstime)."""
        ticks = 0
        for pid in self.pids():
            fields = _stat_fields(pid)
            if fields is not None:
                ticks += sum(int(x) for x in fields[11:15])
        return ticks / CLK_TCK

    def rss_kib(self) -> int:
        return sum(_status_kib(pid, "VmRSS") for pid in self.pids())

    def peak_rss_kib(self) -> int:
        """Sum of VmHWM (peak resident set) over the tree."""
        return sum(_status_kib(pid, "VmHWM") for pid in self.pids())


# --------------------------------------------------------------------------------------------
# a minimal Kafka client


def _request(api_key: int, version: int, correlation: int, body: bytes = b"") -> bytes:
    header = struct.pack(">hhih", api_key, version, correlation, len(CLIENT_ID)) + CLIENT_ID
    payload = header + body
    return struct.pack(">i", len(payload)) + payload


API_VERSIONS_V0 = _request(API_VERSIONS, 0, 1)


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("connection closed by peer")
        buf += chunk
    return bytes(buf)


def _recv_response(sock: socket.socket) -> bytes:
    (size,) = struct.unpack(">i", _recv_exact(sock, 4))
    return _recv_exact(sock, size)


def parse_api_versions(resp: bytes) -> dict[int, tuple[int, int]]:
    """ApiVersions v0 response (after the size): {api key: (min, max)}."""
    _corr, error, count = struct.unpack_from(">ihi", resp, 0)
    if error:
        raise MeasureError(f"ApiVersions error code {error}")
    out = {}
    for i in range(count):
        key, low, high = struct.unpack_from(">hhh", resp, 10 + 6 * i)
        out[key] = (low, high)
    return out


def _metadata_body(version: int) -> bytes:
    body = struct.pack(">i", 0)  # no topics
    if version >= 4:
        body += b"\x00"  # allow_auto_topic_creation
    if version >= 8:
        body += b"\x00\x00"  # include cluster / topic authorized operations
    return body


def _parse_brokers(resp: bytes, version: int) -> list[tuple[int, str, int]]:
    pos = 4  # correlation id
    if version >= 3:
        pos += 4  # throttle_time_ms
    (count,) = struct.unpack_from(">i", resp, pos)
    pos += 4
    brokers = []
    for _ in range(count):
        node, hlen = struct.unpack_from(">ih", resp, pos)
        pos += 6
        host = resp[pos:pos + hlen].decode()
        pos += hlen
        (port,) = struct.unpack_from(">i", resp, pos)
        pos += 4
        if version >= 1:
            (rlen,) = struct.unpack_from(">h", resp, pos)
            pos += 2 + max(rlen, 0)
        brokers.append((node, host, port))
    return brokers


def client_ssl_context(ca_file: str | None) -> ssl.SSLContext | None:
    if ca_file is None:
        return None
    ctx = ssl.create_default_context(cafile=ca_file)
    ctx.check_hostname = True
    return ctx


def metadata_round_trip(host: str, port: int, ctx: ssl.SSLContext | None,
                        timeout: float = 2.0) -> list[tuple[int, str, int]]:
    """Connect, ApiVersions v0, then Metadata (no topics): the brokers the cluster advertises."""
    with socket.create_connection((host, port), timeout=timeout) as raw:
        sock: socket.socket = ctx.wrap_socket(raw, server_hostname=host) if ctx else raw
        sock.sendall(API_VERSIONS_V0)
        versions = parse_api_versions(_recv_response(sock))
        low, high = versions.get(METADATA, (0, -1))
        version = min(max(low, 4), 8, high)
        if version < low:
            raise MeasureError(f"no non-flexible Metadata version (broker has {low}..{high})")
        sock.sendall(_request(METADATA, version, 2, _metadata_body(version)))
        return _parse_brokers(_recv_response(sock), version)


def wait_ready(host: str, port: int, *, ca_file: str | None, started: float, timeout: float,
               alive: Callable[[], bool], brokers: int) -> float:
    """Seconds from ``started`` (time.monotonic()) until a Metadata round trip lists ``brokers``
    brokers. MeasureError if the process dies or ``timeout`` passes."""
    ctx = client_ssl_context(ca_file)
    last = "no connection yet"
    while time.monotonic() - started < timeout:
        if not alive():
            raise MeasureError(f"process exited before it was ready ({last})")
        try:
            found = metadata_round_trip(host, port, ctx, timeout=2.0)
        except (OSError, MeasureError, struct.error, UnicodeDecodeError) as exc:
            last = f"{type(exc).__name__}: {exc}"
            time.sleep(0.02)
            continue
        if len(found) >= brokers:
            return time.monotonic() - started
        last = f"metadata lists {len(found)} brokers"
        time.sleep(0.02)
    raise MeasureError(f"not ready after {timeout:.0f} s ({last})")


async def _open_idle(host: str, port: int, *, ctx: ssl.SSLContext | None, count: int,
                     concurrency: int, deadline: float,
                     ) -> tuple[list[asyncio.StreamWriter], list[str]]:
    writers: list[asyncio.StreamWriter] = []
    errors: list[str] = []
    gate = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with gate:
            if time.monotonic() > deadline:
                errors.append("deadline passed")
                return
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(host, port, ssl=ctx,
                                            server_hostname=host if ctx else None), 30)
                writer.write(API_VERSIONS_V0)
                size = struct.unpack(">i", await asyncio.wait_for(reader.readexactly(4), 30))[0]
                await asyncio.wait_for(reader.readexactly(size), 30)
            except (OSError, TimeoutError, asyncio.IncompleteReadError, ssl.SSLError) as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
                return
            writers.append(writer)

    await asyncio.gather(*(one() for _ in range(count)))
    return writers, errors


def hold_idle_connections(host: str, port: int, *, ca_file: str | None, count: int,
                          measure: Callable[[], int], settle: float = 2.0,
                          timeout: float = 300.0) -> tuple[int, int]:
    """Open ``count`` connections that each complete an ApiVersions exchange, wait ``settle``
    seconds, call ``measure()`` while they are open, close them. Returns (connections that
    succeeded, measure()). MeasureError if more than 1 % failed."""
    ctx = client_ssl_context(ca_file)

    async def main() -> tuple[int, int]:
        deadline = time.monotonic() + timeout
        writers, errors = await _open_idle(host, port, ctx=ctx, count=count,
                                           concurrency=64, deadline=deadline)
        try:
            if len(errors) > count // 100:
                first = ", ".join(sorted(set(errors))[:3])
                raise MeasureError(f"{len(errors)} of {count} idle connections failed: {first}")
            await asyncio.sleep(settle)
            return len(writers), measure()
        finally:
            for w in writers:
                w.close()
            for w in writers:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(w.wait_closed(), 5)

    return asyncio.run(main())

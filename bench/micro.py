"""Micro-benchmark of the relay hot path: proxy CPU per request, without a Kafka cluster.

This is a lab instrument for changes to the relay loop, not a stand-in for Kafka in any test:
``make bench`` and bench/ab.py measure against real brokers. Here a synthetic client sends
Produce v13 requests (acks=-1, the size given) to the proxy and a synthetic upstream answers each
with a fixed Produce v13 response, so the proxy does exactly its per-request producer-path
work (read, header peek, acks parse, forward; read, response walk, forward) and nothing else
runs on the machine. Reported: requests/s and the proxy's CPU (user, system) per request and
per GB, for kafka-edge and for a bare uvloop byte relay (the floor of any Python relay), and
optionally another build (``--baseline-src``), run alternately.

    bench/micro.py --seconds 5 --rounds 3 --size 32768
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import signal
import socket
import ssl
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import uvloop
from paths import PortBlocks

CLK_TCK = os.sysconf("SC_CLK_TCK")
REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def produce_request(correlation: int, size: int) -> bytes:
    """A Produce v13 request header and body prefix, padded to ``size`` with record bytes."""
    client = b"micro-producer"
    header = struct.pack(">hhih", 0, 13, correlation, len(client)) + client + b"\x00"
    body = b"\x00" + struct.pack(">hi", -1, 30000)  # transactional id null, acks -1, timeout
    # one topic (uuid), one partition with a records blob
    records = b"\x00" * max(0, size - len(header) - len(body) - 40)
    body += b"\x02" + b"\x11" * 16 + b"\x02" + struct.pack(">i", 0)
    body += _uvarint(len(records) + 1) + records + b"\x00" + b"\x00" + b"\x00"
    frame = header + body
    return struct.pack(">i", len(frame)) + frame


def produce_response(correlation: int, partitions: int = 2) -> bytes:
    part = struct.pack(">ihqqq", 0, 0, 12345, -1, 0) + b"\x01" + b"\x00" + b"\x00"
    topic = b"\x11" * 16 + _uvarint(partitions + 1) + part * partitions + b"\x00"
    body = b"\x02" + topic + struct.pack(">i", 0) + b"\x00"
    frame = struct.pack(">i", correlation) + b"\x00" + body
    return struct.pack(">i", len(frame)) + frame


def fetch_request(correlation: int) -> bytes:
    """A Fetch v17 request frame (the proxy reads only its header; the body is opaque)."""
    client = b"micro-consumer"
    frame = struct.pack(">hhih", 1, 17, correlation, len(client)) + client + b"\x00" + b"\x00" * 40
    return struct.pack(">i", len(frame)) + frame


def fetch_response(correlation: int, size: int, partitions: int = 4) -> bytes:
    """A Fetch v17 response with ``size`` bytes of records over ``partitions`` partitions."""
    sys.path.insert(0, str(REPO / "src"))
    import uuid

    from kafka_edge.protocol import codec
    from kafka_edge.protocol.messages import FETCH_RESPONSE

    records = b"\x00" * (size // partitions)
    value = {"ThrottleTimeMs": 0, "ErrorCode": 0, "SessionId": 1, "Responses": [
        {"TopicId": uuid.UUID(int=9), "Partitions": [
            {"PartitionIndex": i, "ErrorCode": 0, "HighWatermark": 10, "LastStableOffset": 10,
             "LogStartOffset": 0, "AbortedTransactions": None, "PreferredReadReplica": -1,
             "Records": records} for i in range(partitions)]}]}
    frame = struct.pack(">i", correlation) + b"\x00" + codec.encode(FETCH_RESPONSE, 17, value)
    return struct.pack(">i", len(frame)) + frame


def _uvarint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


# ---------------------------------------------------------------------------------------------
# synthetic upstream and client (each in its own process)


class Upstream(asyncio.Protocol):
    fetch_body = b""  # set per process: a Fetch response without its size and correlation id

    def __init__(self) -> None:
        self.buf = bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.t = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        out = []
        pos = 0
        while len(buf) - pos >= 12:
            size, corr = struct.unpack_from(">i4xi", buf, pos)
            if len(buf) - pos < 4 + size:
                break
            if Upstream.fetch_body and struct.unpack_from(">h", buf, pos + 4)[0] == 1:
                out.append(struct.pack(">ii", 4 + len(Upstream.fetch_body), corr))
                out.append(Upstream.fetch_body)
            else:
                out.append(produce_response(corr))
            pos += 4 + size
        del buf[:pos]
        if out:
            self.t.write(b"".join(out))  # type: ignore[attr-defined]


def make_tls(work: Path) -> dict[str, str]:
    """A test CA and a certificate for 127.0.0.1 (files under ``work``)."""
    import trustme

    ca = trustme.CA()
    leaf = ca.issue_cert("127.0.0.1")
    files = {"ca": str(work / "ca.pem"), "cert": str(work / "cert.pem"),
             "key": str(work / "key.pem")}
    ca.cert_pem.write_to_path(files["ca"])
    leaf.cert_chain_pems[0].write_to_path(files["cert"])
    leaf.private_key_pem.write_to_path(files["key"])
    return files


def server_ssl(tls: dict[str, str] | None) -> ssl.SSLContext | None:
    if tls is None:
        return None
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(tls["cert"], tls["key"])
    return ctx


def client_ssl(tls: dict[str, str] | None) -> ssl.SSLContext | None:
    return None if tls is None else ssl.create_default_context(cafile=tls["ca"])


def run_upstream(port: int, fetch_size: int, tls: dict[str, str] | None) -> None:
    if fetch_size:
        Upstream.fetch_body = fetch_response(0, fetch_size)[8:]

    async def main() -> None:
        server = await asyncio.get_running_loop().create_server(
            Upstream, "127.0.0.1", port, ssl=server_ssl(tls))
        await server.serve_forever()
    uvloop.run(main())


async def _client(port: int, size: int, seconds: float, conns: int, inflight: int,
                  fetch: bool, tls: dict[str, str] | None) -> int:
    done = 0
    stop_at = time.monotonic() + seconds

    async def one(k: int) -> None:
        nonlocal done
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client_ssl(tls))
        corr = 0
        pending = 0
        while time.monotonic() < stop_at:
            while pending < inflight:
                writer.write(fetch_request(corr) if fetch else produce_request(corr, size))
                corr += 1
                pending += 1
            head = await reader.readexactly(4)
            await reader.readexactly(struct.unpack(">i", head)[0])
            pending -= 1
            done += 1
        writer.close()

    await asyncio.gather(*(one(k) for k in range(conns)))
    return done


def run_client(port: int, size: int, seconds: float, conns: int, inflight: int, fetch: bool,
               tls: dict[str, str] | None, q: mp.Queue[int]) -> None:
    q.put(uvloop.run(_client(port, size, seconds, conns, inflight, fetch, tls)))


# ---------------------------------------------------------------------------------------------
# the proxies


BARE_RELAY = """
import asyncio, ssl, sys, uvloop
UP = int(sys.argv[2])
TLS = sys.argv[3:]  # ca, cert, key: TLS on both sides
SERVER = CLIENT = None
if TLS:
    SERVER = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    SERVER.load_cert_chain(TLS[1], TLS[2])
    CLIENT = ssl.create_default_context(cafile=TLS[0])
class Up(asyncio.Protocol):
    def __init__(s, down): s.down = down
    def data_received(s, d): s.down.write(d)
    def connection_lost(s, e): s.down.close()
class Down(asyncio.Protocol):
    def connection_made(s, t):
        s.t = t; s.up = None; s.early = []
        asyncio.get_running_loop().create_task(s.dial())
    async def dial(s):
        loop = asyncio.get_running_loop()
        s.up, _ = await loop.create_connection(lambda: Up(s.t), "127.0.0.1", UP, ssl=CLIENT)
        for d in s.early: s.up.write(d)
    def data_received(s, d):
        if s.up is None: s.early.append(d)
        else: s.up.write(d)
    def connection_lost(s, e):
        if s.up is not None: s.up.close()
async def main():
    srv = await asyncio.get_running_loop().create_server(Down, "127.0.0.1", int(sys.argv[1]),
                                                         ssl=SERVER)
    await srv.serve_forever()
uvloop.run(main())
"""


SOCK_RELAY = """
import asyncio, socket, ssl, sys, uvloop
UP = int(sys.argv[2]); TLS = sys.argv[3:]
SERVER = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER); SERVER.load_cert_chain(TLS[1], TLS[2])
CLIENT = ssl.create_default_context(cafile=TLS[0])
BUF = bytearray(262144); MV = memoryview(BUF)
async def handshake(loop, s):
    while True:
        try:
            s.do_handshake(); return
        except ssl.SSLWantReadError:
            f = loop.create_future(); loop.add_reader(s.fileno(), f.set_result, None)
            try: await f
            finally: loop.remove_reader(s.fileno())
        except ssl.SSLWantWriteError:
            f = loop.create_future(); loop.add_writer(s.fileno(), f.set_result, None)
            try: await f
            finally: loop.remove_writer(s.fileno())
class End:
    def __init__(s, loop, sock):
        s.loop = loop; s.sock = sock; s.fd = sock.fileno(); s.peer = None; s.out = None
    def start(s): s.loop.add_reader(s.fd, s.readable)
    def readable(s):
        sock = s.sock
        while True:
            try: n = sock.recv_into(BUF)
            except ssl.SSLWantReadError: return
            except (ssl.SSLError, OSError): s.close(); return
            if n == 0: s.close(); return
            s.peer.send(MV[:n])
    def send(s, data):
        if s.out is not None: s.out += data; return
        try:
            s.sock.send(data)
        except ssl.SSLWantWriteError:
            s.out = bytearray(data); s.loop.add_writer(s.fd, s.writable)
    def writable(s):
        try:
            s.sock.send(s.out)
        except ssl.SSLWantWriteError:
            return
        s.out = None; s.loop.remove_writer(s.fd)
    def close(s):
        s.loop.remove_reader(s.fd); s.loop.remove_writer(s.fd); s.sock.close()
        if s.peer and s.peer.sock.fileno() >= 0: s.peer.close()
async def serve(loop, raw):
    raw.setblocking(False)
    down = SERVER.wrap_socket(raw, server_side=True, do_handshake_on_connect=False)
    await handshake(loop, down)
    r = socket.socket(); r.setblocking(False)
    r.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    await loop.sock_connect(r, ("127.0.0.1", UP))
    up = CLIENT.wrap_socket(r, server_hostname="127.0.0.1", do_handshake_on_connect=False)
    await handshake(loop, up)
    a, b = End(loop, down), End(loop, up); a.peer, b.peer = b, a; a.start(); b.start()
async def main():
    loop = asyncio.get_running_loop()
    ls = socket.socket(); ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", int(sys.argv[1]))); ls.listen(128); ls.setblocking(False)
    while True:
        c, _ = await loop.sock_accept(ls)
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        loop.create_task(serve(loop, c))
uvloop.run(main())
"""


def wait_listening(proc: subprocess.Popen[bytes], port: int, what: str,
                   timeout: float = 30.0) -> subprocess.Popen[bytes]:
    """``proc`` once something accepts connections on 127.0.0.1:``port`` (killed, and
    RuntimeError naming ``what``, if nothing does within ``timeout`` seconds)."""
    deadline = time.monotonic() + timeout  # a loaded machine starts Python slowly
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"{what} did not start")


def start_edge(work: Path, listen: int, upstream: int, tls: dict[str, str] | None, src: str,
               env_extra: dict[str, str] | None = None, log_level: str = "warning",
               ) -> subprocess.Popen[bytes]:
    """A kafka-edge (the one under ``src``, a src directory) between 127.0.0.1:``listen`` and the
    synthetic upstream on ``upstream`` by port routing (one broker, node 1, on ``listen + 1``;
    the HTTP endpoint on ``listen + 5``), TLS on both sides with ``tls`` (see
    :func:`make_tls`); ``env_extra`` added to its environment. Returned once it accepts."""
    cfg = work / f"edge-{listen}.yaml"
    up_tls = f", tls: {{ca_file: '{tls['ca']}'}}" if tls else ""
    edge_tls = (f", tls: {{certificates: [{{cert_file: '{tls['cert']}', "
                f"key_file: '{tls['key']}'}}]}}" if tls else "")
    cfg.write_text(
        "clusters:\n  - name: m\n"
        f"    upstream: {{bootstrap_servers: ['127.0.0.1:{upstream}']{up_tls}}}\n"
        f"    port_routing: {{bind_host: 127.0.0.1, bootstrap_port: {listen}, "
        f"broker_port_base: {listen + 1}, node_id_min: 1, node_id_max: 1, "
        f"advertised_host: 127.0.0.1{edge_tls}}}\n"
        f"observability: {{http_bind: '127.0.0.1:{listen + 5}', log_level: {log_level}}}\n")
    # `-c`: starts any build's cli, whether or not its cli.py has a __main__ block
    argv = [sys.executable, "-c", "from kafka_edge.cli import main; main()",
            "run", "--config", str(cfg)]
    env = {**os.environ, "PYTHONPATH": src, **(env_extra or {})}
    return wait_listening(subprocess.Popen(argv, env=env), listen, "kafka-edge")


def start_proxy(kind: str, listen: int, upstream: int, work: Path,
                baseline: str | None, tls: dict[str, str] | None) -> subprocess.Popen[bytes]:
    if kind not in ("bare", "bare-sock"):
        if kind == "baseline" and not baseline:
            raise ValueError("the kind 'baseline' needs --baseline-src")
        src = baseline if kind == "baseline" and baseline else str(REPO / "src")
        return start_edge(work, listen, upstream, tls, src)
    argv = [sys.executable, "-c", BARE_RELAY if kind == "bare" else SOCK_RELAY,
            str(listen), str(upstream)]
    if tls:
        argv += [tls["ca"], tls["cert"], tls["key"]]
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    return wait_listening(subprocess.Popen(argv, env=env), listen, kind)


def ticks(pid: int) -> tuple[int, int]:
    f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(f[11]), int(f[12])


def measure(kind: str, args: argparse.Namespace, upstream: int, work: Path,
            tls: dict[str, str] | None) -> dict[str, float]:
    listen = PortBlocks().block(6)  # the proxy's port, its broker's after it, the admin port
    proxy = start_proxy(kind, listen, upstream, work, args.baseline_src, tls)
    perf = None
    if args.perf:
        Path(args.perf).mkdir(parents=True, exist_ok=True)
        perf = subprocess.Popen(["perf", "record", "-g", "-F", "999", "-p", str(proxy.pid), "-o",
                                 str(Path(args.perf) / f"{kind}.data")],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        q: mp.Queue[int] = mp.Queue()
        u0, s0 = ticks(proxy.pid)
        t0 = time.monotonic()
        client = mp.Process(target=run_client,
                            args=(listen, args.size, args.seconds, args.conns, args.inflight,
                                  args.mode == "fetch", tls, q))
        client.start()
        n = q.get(timeout=args.seconds + 60)
        client.join()
        elapsed = time.monotonic() - t0
        u1, s1 = ticks(proxy.pid)
    finally:
        if perf is not None:
            perf.send_signal(signal.SIGINT)
            perf.wait(30)
        proxy.terminate()
        proxy.wait(10)
    user, sys_ = (u1 - u0) / CLK_TCK, (s1 - s0) / CLK_TCK
    gb = n * args.size / 1e9
    return {"req_s": round(n / elapsed), "user_us": round(user / n * 1e6, 2),
            "sys_us": round(sys_ / n * 1e6, 2), "cpu_us": round((user + sys_) / n * 1e6, 2),
            "cpu_s_per_gb": round((user + sys_) / gb, 3)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--mode", choices=("produce", "fetch"), default="produce",
                    help="produce: --size-byte Produce v13 requests, small answers; fetch: "
                         "small Fetch v17 requests, answers of --size bytes of records")
    ap.add_argument("--size", type=int, default=32768, help="request (produce) or answer "
                                                             "(fetch) bytes")
    ap.add_argument("--tls", action="store_true", help="TLS on both sides of the proxy")
    ap.add_argument("--conns", type=int, default=3)
    ap.add_argument("--inflight", type=int, default=1)
    ap.add_argument("--kinds", default="bare,kafka-edge",
                    help="bare (a minimal uvloop relay), kafka-edge (this tree), baseline")
    ap.add_argument("--baseline-src", help="the src directory of another kafka-edge build, "
                                           "measured as 'baseline' (e.g. a git worktree)")
    ap.add_argument("--perf", metavar="DIR", help="perf record -g each proxy into DIR/KIND.data "
                                                  "(the last round's run is kept)")
    args = ap.parse_args()
    kinds = args.kinds.split(",")
    if "baseline" in kinds and not (args.baseline_src
                                    and (Path(args.baseline_src) / "kafka_edge").is_dir()):
        # else the baseline would silently import this tree's installed package
        ap.error(f"--baseline-src {args.baseline_src!r} holds no kafka_edge package")
    results: dict[str, list[dict[str, float]]] = {k: [] for k in kinds}
    with tempfile.TemporaryDirectory() as tmp:
        tls = make_tls(Path(tmp)) if args.tls else None
        upstream = free_port()
        up = mp.Process(target=run_upstream,
                        args=(upstream, args.size if args.mode == "fetch" else 0, tls),
                        daemon=True)
        up.start()
        try:
            for r in range(args.rounds):
                for kind in kinds if r % 2 == 0 else kinds[::-1]:
                    res = measure(kind, args, upstream, Path(tmp), tls)
                    results[kind].append(res)
                    print(f"round {r} {kind:10} {res}", flush=True)
        finally:
            up.terminate()
    print(f"\nmedians ({args.rounds} rounds, {args.mode}{' tls' if tls else ''}, "
          f"{args.size} bytes, {args.conns} "
          f"connections x {args.inflight} in flight)")
    for kind, runs in results.items():
        med = {k: statistics.median(x[k] for x in runs) for k in runs[0]}
        print(f"  {kind:10} " + "  ".join(f"{k}={v}" for k, v in med.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())

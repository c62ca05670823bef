"""Resident memory of kafka-edge under TLS connection churn, round by round.

Each round opens ``--conns`` TLS connections to a kafka-edge (TLS towards the client and
towards the upstream), sends one Produce request on each, reads its answer, and closes it
(``--parallel`` at a time); after the round the proxy's RSS is read from /proc. The upstream is
bench/micro.py's synthetic one (a lab instrument: it answers each Produce with a fixed answer),
so only the proxy's own memory is measured. ``--env`` runs the proxy with extra environment
variables (e.g. ``MALLOC_ARENA_MAX=2`` or ``GLIBC_TUNABLES=glibc.malloc.trim_threshold=...``),
``--src`` measures another build's src directory.

    bench/tls_churn.py --rounds 12 --conns 500 [--plain] [--env K=V ...] [--src DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import ssl
import struct
import sys
import tempfile
import time
from pathlib import Path

import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent))
import contextlib

from micro import client_ssl, free_port, make_tls, produce_request, run_upstream, start_edge

REPO = Path(__file__).resolve().parent.parent


def port_block() -> int:
    """The first of six free consecutive ports below the ephemeral range (thousands of client
    connections in TIME_WAIT would otherwise collide with the proxy's broker ports)."""
    import random
    import socket
    while True:
        base = random.randrange(20000, 30000)
        try:
            for p in range(base, base + 6):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", p))
            return base
        except OSError:
            continue


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


async def churn_round(port: int, conns: int, parallel: int,
                      ctx: ssl.SSLContext | None) -> int:
    """Open, use once and close ``conns`` connections; returns how many got their answer."""
    sem = asyncio.Semaphore(parallel)
    ok = 0

    async def one(k: int) -> None:
        nonlocal ok
        async with sem:
            reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx)
            try:
                writer.write(produce_request(k, 512))
                head = await reader.readexactly(4)
                body = await reader.readexactly(struct.unpack(">i", head)[0])
                if struct.unpack_from(">i", body)[0] == k:
                    ok += 1
            finally:
                writer.close()
                with contextlib.suppress(OSError, ssl.SSLError):
                    await writer.wait_closed()

    await asyncio.gather(*(one(k) for k in range(conns)))
    return ok


def run(rounds: int, conns: int, parallel: int, plain: bool, src: str,
        env_extra: dict[str, str], settle_s: float, log_level: str = "warning") -> list[int]:
    """RSS (KiB) after each round."""
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        tls = None if plain else make_tls(work)
        upstream = free_port()
        up = mp.Process(target=run_upstream, args=(upstream, 0, tls), daemon=True)
        up.start()
        listen = port_block()
        edge = start_edge(work, listen, upstream, tls, src, env_extra, log_level)
        try:
            ctx = client_ssl(tls)
            out = []
            for r in range(rounds):
                ok = uvloop.run(churn_round(listen, conns, parallel, ctx))
                if ok != conns:
                    raise RuntimeError(f"round {r}: {ok} of {conns} answered")
                time.sleep(settle_s)  # the proxy's housekeeping ticks once a second
                out.append(rss_kib(edge.pid))
                print(f"round {r + 1}: RSS {out[-1] / 1024:.1f} MiB", flush=True)
            return out
        finally:
            edge.terminate()
            edge.wait(20)
            up.terminate()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=12)
    ap.add_argument("--conns", type=int, default=500)
    ap.add_argument("--parallel", type=int, default=50)
    ap.add_argument("--plain", action="store_true", help="no TLS on either side")
    ap.add_argument("--src", default=str(REPO / "src"))
    ap.add_argument("--env", action="append", default=[], metavar="K=V")
    ap.add_argument("--settle", type=float, default=2.5, help="seconds before each reading")
    ap.add_argument("--json", help="write the readings here")
    ap.add_argument("--log-level", default="warning", help="the proxy's (debug shows trims)")
    args = ap.parse_args()
    env = dict(e.split("=", 1) for e in args.env)
    rss = run(args.rounds, args.conns, args.parallel, args.plain, args.src, env, args.settle,
              args.log_level)
    growth = (rss[-1] - rss[1]) / 1024
    per_conn = (rss[-1] - rss[1]) / max(1, (len(rss) - 2) * args.conns)
    print(f"round 2 -> {len(rss)}: {growth:+.1f} MiB ({per_conn:.1f} KiB per closed connection)")
    if args.json:
        Path(args.json).write_text(json.dumps({"rss_kib": rss, "env": env, "src": args.src,
                                               "conns": args.conns, "plain": args.plain}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What one TLS session costs in memory with this Python's OpenSSL, before any proxy state.

A TLS connection through kafka-edge holds two sessions: one in the server role (towards the
client) and one in the client role (towards the broker). This measures each, in a fresh process
per case: N handshakes over memory BIOs (TLS 1.3, P-256 certificate from trustme), one small
record each way, then the resident-set growth per session kept. ``make bench`` reports the
proxy's whole per-connection figure; this says how much of it OpenSSL itself holds.

    bench/tls_memory.py [--sessions 1000]
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import ssl
import subprocess
import sys

CASES = {
    "server role (towards the client)": "server",
    "client role (towards the broker), peer sends tickets": "client",
    "client role, peer sends no session ticket": "client-noticket",
    "both roles (one proxied connection)": "both",
}


def rss_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def measure(case: str, sessions: int) -> float:
    import trustme

    ca = trustme.CA()
    leaf = ca.issue_cert("127.0.0.1")
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    leaf.configure_cert(server_ctx)
    client_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ca.configure_trust(client_ctx)
    if case == "client-noticket":
        server_ctx.num_tickets = 0

    def connection() -> tuple[object, ...]:
        s_in, s_out, c_in, c_out = (ssl.MemoryBIO() for _ in range(4))
        server = server_ctx.wrap_bio(s_in, s_out, server_side=True)
        client = client_ctx.wrap_bio(c_in, c_out, server_hostname="127.0.0.1")
        for _ in range(10):
            for end in (client, server):
                with contextlib.suppress(ssl.SSLWantReadError):
                    end.do_handshake()
            if c_out.pending:
                s_in.write(c_out.read())
            if s_out.pending:
                c_in.write(s_out.read())
        client.write(b"x" * 100)
        s_in.write(c_out.read())
        server.read(1000)
        server.write(b"y" * 500)
        c_in.write(s_out.read())
        client.read(1000)
        if case == "server":
            return (server, s_in, s_out)
        if case.startswith("client"):
            return (client, c_in, c_out)
        return (server, client, s_in, s_out, c_in, c_out)

    kept = [connection() for _ in range(50)]  # warm the allocator
    gc.collect()
    before = rss_kib()
    kept += [connection() for _ in range(sessions)]
    gc.collect()
    return (rss_kib() - before) / sessions


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sessions", type=int, default=1000)
    ap.add_argument("--case", choices=sorted(set(CASES.values())), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.case:
        print(f"{measure(args.case, args.sessions):.1f}")
        return 0
    print(ssl.OPENSSL_VERSION)
    for label, case in CASES.items():
        out = subprocess.run([sys.executable, __file__, "--case", case, "--sessions",
                              str(args.sessions)], capture_output=True, text=True, check=True)
        print(f"  {label}: {out.stdout.strip()} KiB per session kept")
    return 0


if __name__ == "__main__":
    sys.exit(main())

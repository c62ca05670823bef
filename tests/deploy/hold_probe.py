"""A client that holds one connection open through a shutdown, run inside a namespace.

usage: hold_probe.py HOST PORT [--ca FILE]
Connects (TLS when --ca is given, verifying HOST), sends an ApiVersions v0 request, reads the
whole answer and prints ``answered``; then waits until the proxy ends the connection and prints
``eof`` (an orderly close) or ``error: ...`` (a reset, a TLS error, or nothing within 120 s).
"""

from __future__ import annotations

import argparse
import socket
import ssl
import struct
import sys


def api_versions_request() -> bytes:
    cid = b"hold-probe"
    payload = struct.pack(">hhih", 18, 0, 1, len(cid)) + cid
    return struct.pack(">i", len(payload)) + payload


def read_exact(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("closed before the whole answer")
        buf += chunk
    return buf


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("--ca")
    args = parser.parse_args()
    sock = socket.create_connection((args.host, args.port), timeout=10)
    if args.ca:
        sock = ssl.create_default_context(cafile=args.ca).wrap_socket(
            sock, server_hostname=args.host)
    sock.sendall(api_versions_request())
    (size,) = struct.unpack(">i", read_exact(sock, 4))
    read_exact(sock, size)
    print("answered", flush=True)
    sock.settimeout(120)
    try:
        data = sock.recv(1)
        print("eof" if not data else f"error: unexpected bytes {data!r}", flush=True)
    except (OSError, ssl.SSLError) as exc:
        print(f"error: {type(exc).__name__}: {exc}", flush=True)
    sys.exit(0)


if __name__ == "__main__":
    main()

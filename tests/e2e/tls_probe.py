"""A small TLS client for refusal tests, run inside a namespace: prints one JSON line.

usage: tls_probe.py HOST PORT [--sni NAME | --no-sni] [--ca FILE] [--plaintext]
It connects, does the TLS handshake (unless --plaintext), sends an ApiVersions v0 request and
reports what happened: {"handshake": ok|error, "error": ..., "answer": bool, "peer_cert": ...}.
"""

from __future__ import annotations

import argparse
import json
import socket
import ssl
import struct


def api_versions_request() -> bytes:
    cid = b"probe"
    payload = struct.pack(">hhih", 18, 0, 1, len(cid)) + cid
    return struct.pack(">i", len(payload)) + payload


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("--sni")
    parser.add_argument("--no-sni", action="store_true")
    parser.add_argument("--ca")
    parser.add_argument("--plaintext", action="store_true")
    args = parser.parse_args()
    result: dict[str, object] = {}
    sock = socket.create_connection((args.host, args.port), timeout=10)
    try:
        if not args.plaintext:
            ctx = ssl.create_default_context(cafile=args.ca)
            if args.no_sni:
                ctx.check_hostname = False
            try:
                sock = ctx.wrap_socket(sock, server_hostname=None if args.no_sni else args.sni)
                result["handshake"] = "ok"
                cert = sock.getpeercert()
                result["peer_serial"] = cert.get("serialNumber") if cert else None
            except (ssl.SSLError, OSError) as exc:
                result.update(handshake="error", error=f"{type(exc).__name__}: {exc}")
                print(json.dumps(result))
                return
        sock.sendall(api_versions_request())
        try:
            data = sock.recv(4)
            result["answer"] = len(data) == 4
        except (OSError, ssl.SSLError) as exc:
            result["answer"] = False
            result["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        sock.close()
    print(json.dumps(result))


if __name__ == "__main__":
    main()

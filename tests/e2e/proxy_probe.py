"""A small client for the PROXY protocol tests, run inside a namespace; prints one JSON line.

usage:
  proxy_probe.py once HOST PORT [--bind ADDR] [--header-hex HEX] [--sni NAME --ca FILE]
      connect (from ADDR), send the header bytes (if any), then an ApiVersions v0 request
      (over TLS with server name NAME if given); report {"local": "ip:port", "answer": bool,
      "error": ...}. "answer" is whether a whole answer frame came back.
  proxy_probe.py survivor HOST PORT --header-hex HEX --bad-hex HEX [--bind ADDR]
      connection A: the header, then ApiVersions; connection B: the bad bytes, then
      ApiVersions; A again: ApiVersions. Report {"first": bool, "bad_answered": bool,
      "bad_closed": bool, "after": bool}.
"""

from __future__ import annotations

import argparse
import json
import socket
import ssl
import struct


def api_versions_request(correlation_id: int) -> bytes:
    cid = b"probe"
    payload = struct.pack(">hhih", 18, 0, correlation_id, len(cid)) + cid
    return struct.pack(">i", len(payload)) + payload


def answered(sock: socket.socket, correlation_id: int) -> bool:
    """Send ApiVersions and read its whole answer: True if it came, False if the peer closed."""
    try:
        sock.sendall(api_versions_request(correlation_id))
        head = _exactly(sock, 4)
        frame = _exactly(sock, struct.unpack(">i", head)[0])
    except (OSError, ssl.SSLError, ConnectionError):
        return False
    return bool(struct.unpack_from(">i", frame)[0] == correlation_id)


def _exactly(sock: socket.socket, count: int) -> bytes:
    data = b""
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


def connect(host: str, port: int, bind: str | None) -> socket.socket:
    return socket.create_connection((host, port), timeout=15,
                                    source_address=(bind, 0) if bind else None)


def closed_by_peer(sock: socket.socket) -> bool:
    try:
        return sock.recv(1) == b""
    except (ConnectionResetError, ssl.SSLError):
        return True
    except TimeoutError:
        return False


def once(args: argparse.Namespace) -> dict[str, object]:
    sock = connect(args.host, args.port, args.bind)
    host, port = sock.getsockname()[:2]
    local = f"{host}:{port}"
    result: dict[str, object] = {"local": local}
    try:
        if args.header_hex:
            sock.sendall(bytes.fromhex(args.header_hex))
        if args.sni:
            ctx = ssl.create_default_context(cafile=args.ca)
            try:
                sock = ctx.wrap_socket(sock, server_hostname=args.sni)
            except (ssl.SSLError, OSError) as exc:
                result.update(answer=False, error=f"{type(exc).__name__}: {exc}")
                return result
        result["answer"] = answered(sock, 1)
    finally:
        sock.close()
    return result


def survivor(args: argparse.Namespace) -> dict[str, object]:
    first = connect(args.host, args.port, args.bind)
    try:
        first.sendall(bytes.fromhex(args.header_hex))
        result: dict[str, object] = {"first": answered(first, 1)}
        bad = connect(args.host, args.port, args.bind)
        try:
            bad.sendall(bytes.fromhex(args.bad_hex))
            result["bad_answered"] = answered(bad, 2)
            result["bad_closed"] = closed_by_peer(bad)
        finally:
            bad.close()
        result["after"] = answered(first, 3)
    finally:
        first.close()
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("command", choices=["once", "survivor"])
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("--bind")
    parser.add_argument("--header-hex", default="")
    parser.add_argument("--bad-hex", default="")
    parser.add_argument("--sni")
    parser.add_argument("--ca")
    args = parser.parse_args()
    print(json.dumps(once(args) if args.command == "once" else survivor(args)))


if __name__ == "__main__":
    main()

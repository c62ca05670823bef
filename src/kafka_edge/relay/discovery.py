"""The proxy's own metadata connection: learns broker addresses an instance has not seen yet.

A client that connects to "broker N" on an instance that has never relayed metadata naming N
(a fresh instance behind a load balancer) needs N's upstream address. This module asks the
cluster itself: it connects to a configured bootstrap server (TLS as configured), authenticates
with the discovery credentials if the listener needs SASL (PLAIN or SCRAM), sends a Metadata
request for no topics, and feeds the answer to the directory through the same codec that rewrites
client traffic. It is not on the hot path and uses asyncio streams for clarity.

:func:`session` (a connection, authenticated when credentials are given) is also what
``kafka-edge doctor`` asks the cluster through, so that it sees the cluster as the proxy does.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import struct
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from kafka_edge.protocol.addresses import rewrite_response
from kafka_edge.protocol.errors import ProtocolError
from kafka_edge.protocol.scram import ScramClient
from kafka_edge.routing.directory import Address, BrokerDirectory, Learned

_CLIENT_ID = b"kafka-edge-discovery"
API_METADATA, API_SASL_HANDSHAKE, API_SASL_AUTHENTICATE = 3, 17, 36
METADATA_VERSION = 4  # non-flexible, brokers + no topics; served by every broker since 1.0


@dataclass(frozen=True, slots=True, kw_only=True)
class DiscoveryCredentials:
    mechanism: str
    username: str
    password: str

    def __repr__(self) -> str:  # never show the password
        return f"DiscoveryCredentials(mechanism={self.mechanism!r}, username={self.username!r})"


class Session:
    """One connection to a broker: requests one at a time, each answer read whole."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer, self.correlation_id = reader, writer, 0

    async def call(self, api_key: int, version: int, body: bytes, *,
                   flexible: bool = False) -> bytes:
        """Send one request (header v1, or v2 with an empty tagged-field section when the
        request version is ``flexible``); its answer: response header + body, no size."""
        self.correlation_id += 1
        header = struct.pack(">hhih", api_key, version, self.correlation_id, len(_CLIENT_ID))
        frame = header + _CLIENT_ID + (b"\0" if flexible else b"") + body
        self.writer.write(struct.pack(">i", len(frame)) + frame)
        await self.writer.drain()
        size = struct.unpack(">i", await self.reader.readexactly(4))[0]
        if size < 4 or size > 16 << 20:
            raise ProtocolError(f"discovery: response size {size} out of range")
        payload = await self.reader.readexactly(size)
        if struct.unpack_from(">i", payload)[0] != self.correlation_id:
            raise ProtocolError("discovery: unexpected correlation id")
        return payload


def _string(value: str) -> bytes:
    raw = value.encode()
    return struct.pack(">h", len(raw)) + raw


async def _authenticate(conn: Session, creds: DiscoveryCredentials) -> None:
    answer = await conn.call(API_SASL_HANDSHAKE, 1, _string(creds.mechanism))
    if (error := struct.unpack_from(">h", answer, 4)[0]) != 0:
        raise ProtocolError(f"discovery: SaslHandshake refused {creds.mechanism} (error {error})")

    async def step(token: bytes) -> bytes:
        resp = await conn.call(API_SASL_AUTHENTICATE, 1, struct.pack(">i", len(token)) + token)
        error, msg_len = struct.unpack_from(">hh", resp, 4)
        off = 8 + max(msg_len, 0)
        if error != 0:
            message = resp[8:off].decode(errors="replace") if msg_len > 0 else ""
            raise ProtocolError(f"discovery: authentication failed (error {error}) {message}")
        n = struct.unpack_from(">i", resp, off)[0]
        return resp[off + 4: off + 4 + max(n, 0)]

    if creds.mechanism == "PLAIN":
        await step(b"\0" + creds.username.encode() + b"\0" + creds.password.encode())
        return
    scram = ScramClient(creds.mechanism, creds.username, creds.password)
    server_first = await step(scram.first_message())
    server_final = await step(scram.final_message(server_first))
    scram.verify_server_final(server_final)


async def discover(
    directory: BrokerDirectory,
    address: Address,
    *,
    learn: Callable[[list[Learned], str], bool],
    tls: ssl.SSLContext | None,
    credentials: DiscoveryCredentials | None,
    timeout: float,
) -> dict[int, Address]:
    """Ask the cluster at ``address`` for its brokers; ``learn`` gets the addresses (all or
    nothing: outside the upstream address policy, nothing is learned)."""

    async def run() -> dict[int, Address]:
        async with session(address, tls=tls, credentials=credentials) as conn:
            body = struct.pack(">i?", 0, False)  # no topics, no auto-creation
            payload = await conn.call(API_METADATA, METADATA_VERSION, body)
            named: list[Learned] = []

            def note(node_id: int, h: str, p: int, is_broker: bool) -> tuple[str, int]:
                if is_broker:
                    named.append((node_id, h, p))
                return directory.edge_address(node_id)

            rewrite_response(API_METADATA, METADATA_VERSION, payload, note)
            if not learn(named, "the discovery Metadata answer"):
                raise ProtocolError("the cluster's metadata names addresses outside the "
                                    "upstream address policy (see the log line before)")
            return {node_id: (h, p) for node_id, h, p in named}

    return await asyncio.wait_for(run(), timeout)


def closed_without_answer(exc: BaseException) -> bool:
    """Did the peer close the connection instead of answering? A SASL listener does so to any
    request but ApiVersions and SaslHandshake before authentication, without a word."""
    return isinstance(exc, (asyncio.IncompleteReadError, ConnectionResetError, BrokenPipeError))


@contextlib.asynccontextmanager
async def session(address: Address, *, tls: ssl.SSLContext | None,
                  credentials: DiscoveryCredentials | None) -> AsyncIterator[Session]:
    """A connection to ``address`` (TLS as configured, the host as server name, as the
    dialler connects), authenticated with ``credentials`` when given; closed on leaving. No
    timeout: the caller bounds the whole exchange."""
    host, port = address
    reader, writer = await asyncio.open_connection(
        host, port, ssl=tls, server_hostname=host if tls else None
    )
    try:
        conn = Session(reader, writer)
        if credentials is not None:
            await _authenticate(conn, credentials)
        yield conn
    finally:
        writer.close()
        with contextlib.suppress(OSError, ssl.SSLError):
            await writer.wait_closed()

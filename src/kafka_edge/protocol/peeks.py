"""Peeks: the few values the relay reads from a frame's first bytes without decoding the frame
(pure: bytes in, a small answer out).

* ``request_header``: (api key, api version, correlation id) of every request;
* ``produce_acks`` / ``produce_acks_fast``: a Produce request's ``acks`` (acks=0 gets no
  answer), from a prefix of the frame;
* ``sasl_handshake_v0_succeeded``: whether a SaslHandshake v0 answer says OK (``sasl_v0``
  follows the raw-token phase that a successful one starts).

``payload`` always means one frame *without* its int32 size prefix.
"""

from __future__ import annotations

from kafka_edge.protocol import codec
from kafka_edge.protocol.errors import ProtocolError, Truncated
from kafka_edge.protocol.messages import API_KEYS
from kafka_edge.protocol.primitives import (
    INT16,
    INT32,
    Buffer,
    read_uvarint,
    skip_tagged_section,
)

__all__ = [
    "produce_acks",
    "produce_acks_fast",
    "request_header",
    "sasl_handshake_v0_succeeded",
]

_PRODUCE = 0

# -- requests -----------------------------------------------------------------------------------

_REQUEST_HEADER = INT16.size * 2 + INT32.size  # api key, api version, correlation id


def request_header(payload: Buffer) -> tuple[int, int, int]:
    """(api_key, api_version, correlation_id) of a request frame."""
    if len(payload) < _REQUEST_HEADER:
        raise ProtocolError(f"request of {len(payload)} bytes is shorter than a request header "
                            f"({_REQUEST_HEADER} bytes)")
    api_key = INT16.unpack_from(payload, 0)[0]
    api_version = INT16.unpack_from(payload, 2)[0]
    correlation_id = INT32.unpack_from(payload, 4)[0]
    return api_key, api_version, correlation_id


def _is_flexible_request(api_key: int, api_version: int) -> bool:
    spec = API_KEYS.get(api_key)
    return (spec is not None and spec.request_flexible_from is not None
            and api_version >= spec.request_flexible_from)


def _prefix_uvarint(buf: memoryview, pos: int) -> tuple[int, int] | None:
    """An unsigned varint, or None if ``buf`` ends before it does."""
    try:
        return read_uvarint(buf, pos)
    except Truncated:
        return None


def _skip_tagged_prefix(buf: memoryview, pos: int) -> int | None:
    """Skip a tagged-field section; None if ``buf`` ends inside it."""
    try:
        return skip_tagged_section(buf, pos)
    except Truncated:
        return None


def _skip_client_id(buf: memoryview) -> int | None:
    """Offset after the request header's client_id (int16-length nullable string)."""
    if len(buf) < _REQUEST_HEADER + 2:
        return None
    length: int = INT16.unpack_from(buf, _REQUEST_HEADER)[0]
    if length < -1:
        raise ProtocolError(f"invalid client_id length {length}", _REQUEST_HEADER)
    return _REQUEST_HEADER + 2 + max(length, 0)


def produce_acks(payload: Buffer, api_version: int) -> int | None:
    """The ``acks`` of a Produce request, from a prefix of its frame (no size prefix).

    None if the prefix is too short to tell. Produce v3+ puts the transactional id (nullable
    string, compact from v9) before acks; v0-2 (still advertised by brokers) start with acks.
    """
    buf = codec.as_view(payload)
    pos: int | None = _skip_client_id(buf)
    if pos is None or pos > len(buf):
        return None
    if _is_flexible_request(_PRODUCE, api_version):
        pos = _skip_tagged_prefix(buf, pos)
        if pos is None:
            return None
        got = _prefix_uvarint(buf, pos)  # compact nullable transactional_id
        if got is None:
            return None
        length, pos = got[0] - 1, got[1]
        pos += max(length, 0)
    elif api_version >= 3:
        if pos + 2 > len(buf):
            return None
        length = INT16.unpack_from(buf, pos)[0]
        if length < -1:
            raise ProtocolError(f"invalid transactional_id length {length}", pos)
        pos += 2 + max(length, 0)
    if pos + 2 > len(buf):
        return None
    return int(INT16.unpack_from(buf, pos)[0])


def produce_acks_fast(buf: Buffer, pos: int, limit: int, api_version: int) -> int | None:
    """``acks`` of the Produce request frame at ``buf[pos:]`` (size prefix included) in the
    common shape: flexible version (v9+), a non-null client id, no header tags and a
    transactional id shorter than 127 bytes. None means "not that shape, or ``buf`` ends
    (``limit``) too early": ask :func:`produce_acks`. Every produced batch passes here, so it
    reads bytes by index instead of going through the general peek.
    """
    if api_version < 9:
        return None
    q = pos + 14  # size, api key, version, correlation id, client id length
    if q > limit:
        return None
    hi = buf[q - 2]
    if hi >= 0x80:  # a null client id
        return None
    q += (hi << 8) | buf[q - 1]
    if q + 2 > limit or buf[q] != 0:  # header tags present
        return None
    t = buf[q + 1]  # compact nullable transactional id: 0 null, else length + 1
    if t >= 0x80:
        return None
    q += 2 + (t - 1 if t else 0)
    if q + 2 > limit:
        return None
    return int(INT16.unpack_from(buf, q)[0])


# -- responses ----------------------------------------------------------------------------------


def sasl_handshake_v0_succeeded(payload: Buffer) -> bool:
    """A SaslHandshake v0 response (header v0: correlation id, then error code) says OK."""
    if len(payload) < 6:
        raise ProtocolError(f"SaslHandshake response of {len(payload)} bytes is too short for "
                            "a header and an error code")
    return bool(INT16.unpack_from(payload, 4)[0] == 0)

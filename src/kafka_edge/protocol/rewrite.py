"""What the relay asks of the protocol layer: rewrite broker addresses, intersect ApiVersions,
peek at request headers, and read the SaslHandshake v0 answer (``sasl_v0`` follows the
raw-token phase that a successful one starts).

Everything here is pure: bytes in, bytes (or None, or a small answer) out. ``payload`` always
means one frame *without* its int32 size prefix.

Address-bearing responses (Kafka 4.4 definitions; see docs/kafka-protocol-notes.md, section 1):

=======================  ==========  ========================================================
API (key)                versions    where the addresses are
=======================  ==========  ========================================================
Produce (0)              10-13       top-level tagged NodeEndpoints (tag 0)
Fetch (1)                16-18       top-level tagged NodeEndpoints (tag 0)
Metadata (3)             0-13        Brokers[]
FindCoordinator (10)     0-3 / 4-6   top-level NodeId/Host/Port / Coordinators[]
DescribeQuorum (55)      2           Nodes[].Listeners[] (controller endpoints, uint16 port)
DescribeCluster (60)     0-2         Brokers[]
ShareFetch (78)          1-2         NodeEndpoints[]
ShareAcknowledge (79)    1-2         NodeEndpoints[]
=======================  ==========  ========================================================

Only the top-level field that holds addresses is decoded and re-encoded; every other byte of
the response is copied through as it came (``codec.spans`` finds where fields start and end
without decoding them). Produce and Fetch responses carry all produced/consumed data, so they
are only walked: records are skipped by their length, never decoded or copied, and the answer is
None unless the top-level tagged section holds NodeEndpoints.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kafka_edge.protocol import codec
from kafka_edge.protocol.errors import ProtocolError, Truncated
from kafka_edge.protocol.messages import (
    API_KEYS,
    API_VERSIONS_RESPONSE,
    DESCRIBE_CLUSTER_RESPONSE,
    DESCRIBE_QUORUM_RESPONSE,
    FETCH_RESPONSE,
    FIND_COORDINATOR_RESPONSE,
    METADATA_RESPONSE,
    PRODUCE_RESPONSE,
    RESPONSES,
    SHARE_ACKNOWLEDGE_RESPONSE,
    SHARE_FETCH_RESPONSE,
)
from kafka_edge.protocol.primitives import (
    INT16,
    INT32,
    Buffer,
    read_uvarint,
    skip_tagged_section,
    write_tagged_section,
)
from kafka_edge.protocol.schema import Message

__all__ = [
    "ADVERTISED_MIN_VERSION",
    "MAX_PARSED_VERSION",
    "REWRITTEN_APIS",
    "AddressMapper",
    "api_versions_unsupported_response",
    "produce_acks",
    "request_header",
    "rewrite_api_versions",
    "rewrite_response",
    "sasl_handshake_v0_succeeded",
]

AddressMapper = Callable[[int, str, int, bool], tuple[str, int]]
"""mapper(node_id, upstream_host, upstream_port, is_broker) -> (edge_host, edge_port).

``is_broker`` is False for controller endpoints (DescribeQuorum v2 listeners, DescribeCluster
with EndpointType 2), which the proxy never dials."""

_PRODUCE, _FETCH, _METADATA, _FIND_COORDINATOR = 0, 1, 3, 10
_DESCRIBE_QUORUM, _DESCRIBE_CLUSTER, _SHARE_FETCH, _SHARE_ACKNOWLEDGE = 55, 60, 78, 79
_API_VERSIONS = 18

REWRITTEN_APIS: frozenset[int] = frozenset({
    _PRODUCE, _FETCH, _METADATA, _FIND_COORDINATOR,
    _DESCRIBE_QUORUM, _DESCRIBE_CLUSTER, _SHARE_FETCH, _SHARE_ACKNOWLEDGE,
})

MAX_PARSED_VERSION: dict[int, int] = {
    key: RESPONSES[key].valid[1] for key in sorted(REWRITTEN_APIS)
}

# The minimum version advertised for an API when it differs from the request's validVersions.
# Kafka brokers advertise Produce from v0 although they reject v0-2 (KAFKA-18659: librdkafka
# derives features such as compression support from Produce v0-2 being listed);
# ApiKeys.PRODUCE_API_VERSIONS_RESPONSE_MIN_VERSION = 0. The proxy never needs to parse those
# versions (Produce < v10 carries no address), so it advertises what the broker advertises.
ADVERTISED_MIN_VERSION: dict[int, int] = {_PRODUCE: 0}

_UNSUPPORTED_VERSION = 35
_ENDPOINT_TYPE_CONTROLLER = 2


def _first_version(message: Message, field_name: str) -> int:
    for f in message.body.fields:
        if f.name == field_name:
            return f.versions[0]
    raise KeyError(field_name)


# Versions before these have nothing to rewrite.
_PRODUCE_ENDPOINTS_FROM = _first_version(PRODUCE_RESPONSE, "NodeEndpoints")  # 10
_FETCH_ENDPOINTS_FROM = _first_version(FETCH_RESPONSE, "NodeEndpoints")  # 16
_QUORUM_NODES_FROM = _first_version(DESCRIBE_QUORUM_RESPONSE, "Nodes")  # 2

# The first version of each rewritten API whose response can hold an address; older versions
# (Fetch v4-15 above all) need not be looked at, so the relay streams them through unbuffered.
FIRST_ADDRESS_VERSION: dict[int, int] = {
    _PRODUCE: _PRODUCE_ENDPOINTS_FROM,
    _FETCH: _FETCH_ENDPOINTS_FROM,
    _DESCRIBE_QUORUM: _QUORUM_NODES_FROM,
}
_FIND_COORDINATOR_BATCHED_FROM = _first_version(FIND_COORDINATOR_RESPONSE, "Coordinators")  # 4

for _key in REWRITTEN_APIS:
    assert MAX_PARSED_VERSION[_key] == API_KEYS[_key].max_version, _key


# -- address rewriting --------------------------------------------------------------------------


def rewrite_response(api_key: int, api_version: int, payload: Buffer,
                     mapper: AddressMapper) -> bytes | None:
    """Replace every broker address in one response; None if there was nothing to change.

    ``payload`` is response header + body (no size prefix). Raises ProtocolError if the
    response is malformed or its version is above ``MAX_PARSED_VERSION``.
    """
    if api_key not in REWRITTEN_APIS:
        raise ValueError(f"API key {api_key} carries no broker address")
    max_version = MAX_PARSED_VERSION[api_key]
    message = RESPONSES[api_key]
    if api_version > max_version:
        raise ProtocolError(f"{message.name} v{api_version} is newer than this proxy "
                            f"understands (max v{max_version})")
    if api_version < FIRST_ADDRESS_VERSION.get(api_key, 0):
        return None
    if api_version < message.valid[0]:
        raise ProtocolError(f"{message.name} v{api_version} does not exist (min "
                            f"v{message.valid[0]})")
    buf = codec.as_view(payload)
    body = _body_offset(buf, message, api_version)
    if api_key == _PRODUCE and produce_has_no_endpoints(buf, body, api_version):
        return None  # the common case, answered by a specialised walk (hot path)
    if api_key in (_PRODUCE, _FETCH):
        return _rewrite_tagged_endpoints(message, api_version, buf, body, mapper)
    spans = codec.spans(message, api_version, buf, body)
    _check_end(buf, spans.end, message, api_version)
    replacements = _REWRITERS[api_key](api_version, buf, spans, mapper)
    if not replacements:
        return None
    return _splice(buf, replacements)


def _body_offset(buf: memoryview, message: Message, version: int) -> int:
    """Skip the response header: v0 = correlation id; v1 = + tagged fields (flexible APIs)."""
    if len(buf) < 4:
        raise ProtocolError(f"{message.name} response of {len(buf)} bytes has no header")
    if message.api_key != _API_VERSIONS and message.is_flexible(version):
        try:
            return skip_tagged_section(buf, 4)
        except ProtocolError as exc:
            exc.add_context("ResponseHeader")
            raise
    return 4


def _check_end(buf: memoryview, end: int, message: Message, version: int) -> None:
    if end != len(buf):
        raise ProtocolError(f"{len(buf) - end} unexpected bytes after {message.name} "
                            f"v{version}", end)


def _splice(buf: memoryview, replacements: list[tuple[int, int, bytes]]) -> bytes:
    pieces: list[Buffer] = []
    pos = 0
    for start, end, data in sorted(replacements, key=lambda r: r[0]):
        pieces.append(buf[pos:start])
        pieces.append(data)
        pos = end
    pieces.append(buf[pos:])
    return b"".join(pieces)


def _map_entry(entry: dict[str, Any], node_id: int, mapper: AddressMapper,
               is_broker: bool) -> bool:
    """Map one {Host, Port} entry in place; True if it changed."""
    host, port = mapper(node_id, entry["Host"], entry["Port"], is_broker)
    if host == entry["Host"] and port == entry["Port"]:
        return False
    entry["Host"] = host
    entry["Port"] = port
    return True


_Replacements = list[tuple[int, int, bytes]]
_EntryMapper = Callable[[dict[str, Any]], bool]


def _rewrite_array(message: Message, version: int, buf: memoryview, spans: codec.Spans,
                   name: str, *, map_entry: _EntryMapper) -> _Replacements:
    start, end = spans.fields[name]
    entries, _ = codec.decode_field(message, version, name, buf, start, end=end)
    changed = False
    for entry in entries or ():
        changed |= map_entry(entry)
    if not changed:
        return []
    return [(start, end, codec.encode_field(message, version, name, entries))]


def _rewrite_metadata(version: int, buf: memoryview, spans: codec.Spans,
                      mapper: AddressMapper) -> _Replacements:
    return _rewrite_array(METADATA_RESPONSE, version, buf, spans, "Brokers",
                          map_entry=lambda b: _map_entry(b, b["NodeId"], mapper, True))


def _rewrite_describe_cluster(version: int, buf: memoryview, spans: codec.Spans,
                              mapper: AddressMapper) -> _Replacements:
    is_broker = True
    if "EndpointType" in spans.fields:  # v1+: 1 = brokers, 2 = controllers
        endpoint_type, _ = codec.decode_field(DESCRIBE_CLUSTER_RESPONSE, version,
                                              "EndpointType", buf,
                                              spans.fields["EndpointType"][0])
        is_broker = endpoint_type != _ENDPOINT_TYPE_CONTROLLER
    return _rewrite_array(DESCRIBE_CLUSTER_RESPONSE, version, buf, spans, "Brokers",
                          map_entry=lambda b: _map_entry(b, b["BrokerId"], mapper, is_broker))


def _coordinator_usable(entry: dict[str, Any]) -> bool:
    """Entries for errors (NodeId -1, Host "", Port -1) are left as they are."""
    return bool(entry["ErrorCode"] == 0 and entry["NodeId"] != -1)


def _rewrite_find_coordinator(version: int, buf: memoryview, spans: codec.Spans,
                              mapper: AddressMapper) -> _Replacements:
    message = FIND_COORDINATOR_RESPONSE
    if version >= _FIND_COORDINATOR_BATCHED_FROM:
        return _rewrite_array(
            message, version, buf, spans, "Coordinators",
            map_entry=lambda c: _coordinator_usable(c) and _map_entry(c, c["NodeId"], mapper, True))
    entry: dict[str, Any] = {}
    for name in ("ErrorCode", "NodeId", "Host", "Port"):
        start, end = spans.fields[name]
        entry[name], _ = codec.decode_field(message, version, name, buf, start, end=end)
    if not _coordinator_usable(entry) or not _map_entry(entry, entry["NodeId"], mapper, True):
        return []
    return [(*spans.fields[name], codec.encode_field(message, version, name, entry[name]))
            for name in ("Host", "Port")]


def _rewrite_share(message: Message) -> Callable[[int, memoryview, codec.Spans, AddressMapper],
                                                 _Replacements]:
    def rewrite(version: int, buf: memoryview, spans: codec.Spans,
                mapper: AddressMapper) -> _Replacements:
        return _rewrite_array(message, version, buf, spans, "NodeEndpoints",
                              map_entry=lambda e: _map_entry(e, e["NodeId"], mapper, True))

    return rewrite


def _rewrite_describe_quorum(version: int, buf: memoryview, spans: codec.Spans,
                             mapper: AddressMapper) -> _Replacements:
    def map_node(node: dict[str, Any]) -> bool:
        changed = False
        for listener in node["Listeners"]:
            changed |= _map_entry(listener, node["NodeId"], mapper, False)
        return changed

    return _rewrite_array(DESCRIBE_QUORUM_RESPONSE, version, buf, spans, "Nodes",
                          map_entry=map_node)


_REWRITERS: dict[int, Callable[[int, memoryview, codec.Spans, AddressMapper], _Replacements]] = {
    _METADATA: _rewrite_metadata,
    _FIND_COORDINATOR: _rewrite_find_coordinator,
    _DESCRIBE_CLUSTER: _rewrite_describe_cluster,
    _SHARE_FETCH: _rewrite_share(SHARE_FETCH_RESPONSE),
    _SHARE_ACKNOWLEDGE: _rewrite_share(SHARE_ACKNOWLEDGE_RESPONSE),
    _DESCRIBE_QUORUM: _rewrite_describe_quorum,
}


def produce_has_no_endpoints(buf: memoryview, pos: int, version: int) -> bool:
    """True when a Produce v10+ response body (at ``pos``) is well formed and has no top-level
    tagged field; False means "take the general path" (which also reports malformed input).

    A hand-specialised walk of ProduceResponse (Kafka 4.4 definition, flexible versions only):
    Responses[] { Name (v10-12) | TopicId (v13+), PartitionResponses[] { Index, ErrorCode,
    BaseOffset, LogAppendTimeMs, LogStartOffset (30 bytes), RecordErrors[] { BatchIndex,
    BatchIndexErrorMessage, tags }, ErrorMessage, tags }, tags }, ThrottleTimeMs, tags.
    Every Produce answer goes through here, so it avoids the generic codec's per-field calls;
    tests check it against the generic walk on generated responses of every version.
    """
    try:
        n, pos = _uv(buf, pos)
        if n == 0:
            return False  # a null array: let the general path judge it
        named = version < 13
        for _ in range(n - 1):
            if named:
                length, pos = _uv(buf, pos)
                pos += length - 1 if length else 0
            else:
                pos += 16
            parts, pos = _uv(buf, pos)
            if parts == 0:
                return False
            for _ in range(parts - 1):
                pos += 30
                if buf[pos] == 1 and buf[pos + 1] == 0 and buf[pos + 2] == 0:
                    pos += 3  # the usual tail: no RecordErrors, null ErrorMessage, no tags
                    continue
                errors, pos = _uv(buf, pos)
                if errors == 0:
                    return False
                for _ in range(errors - 1):
                    length, pos = _uv(buf, pos + 4)
                    pos = _skip_tags(buf, pos + (length - 1 if length else 0))
                length, pos = _uv(buf, pos)
                pos = _skip_tags(buf, pos + (length - 1 if length else 0))
            pos = pos + 1 if buf[pos] == 0 else _skip_tags(buf, pos)
        pos += 4
        return pos + 1 == len(buf) and buf[pos] == 0
    except (IndexError, ValueError):
        return False


def _uv(buf: memoryview, pos: int) -> tuple[int, int]:
    """Unsigned varint (the one-byte case inline)."""
    b = buf[pos]
    if b < 0x80:
        return b, pos + 1
    return read_uvarint(buf, pos)


def _skip_tags(buf: memoryview, pos: int) -> int:
    count = buf[pos]
    if count == 0:
        return pos + 1
    return skip_tagged_section(buf, pos)


def _rewrite_tagged_endpoints(message: Message, version: int, buf: memoryview, body: int,
                              mapper: AddressMapper) -> bytes | None:
    """Produce v10+ / Fetch v16+ (hot path): find the top-level tagged section by skipping the
    body, rewrite tag 0 (NodeEndpoints) if present, keep the body prefix as it is."""
    spans = codec.spans(message, version, buf, body)
    _check_end(buf, spans.end, message, version)
    span = spans.tags.get(0)
    if span is None:
        return None
    endpoints, _ = codec.decode_field(message, version, "NodeEndpoints", buf, span[0],
                                      end=span[1])
    changed = False
    for entry in endpoints:
        changed |= _map_entry(entry, entry["NodeId"], mapper, True)
    if not changed:
        return None
    new_value = codec.encode_field(message, version, "NodeEndpoints", endpoints)
    section = bytearray()
    write_tagged_section(section, [
        (tag, new_value if tag == 0 else buf[start:end])
        for tag, (start, end) in spans.tags.items()
    ])
    return b"".join((buf[:spans.tagged_start], section))


# -- ApiVersions --------------------------------------------------------------------------------


def _advertised_range(api_key: int) -> tuple[int, int] | None:
    spec = API_KEYS.get(api_key)
    if spec is None:
        return None
    return ADVERTISED_MIN_VERSION.get(api_key, spec.min_version), spec.max_version


def rewrite_api_versions(api_version: int, payload: Buffer) -> bytes:
    """Intersect a broker's ApiVersions answer with what the proxy can relay.

    Keys the proxy does not know are removed; each remaining range is clipped to the proxy's
    (Kafka 4.4's broker-listener) range and removed if nothing is left. Everything else (error
    code, throttle time, tagged fields such as SupportedFeatures/FinalizedFeatures) is kept byte
    for byte. A response that does not parse at ``api_version`` is parsed as v0, as Kafka
    clients do: a broker answers an ApiVersions version it does not know with a v0
    UNSUPPORTED_VERSION response.
    """
    buf = codec.as_view(payload)
    if len(buf) < 4:
        raise ProtocolError(f"ApiVersions response of {len(buf)} bytes has no header")
    message = API_VERSIONS_RESPONSE
    candidates = [0]
    if 0 < api_version <= message.valid[1]:
        candidates.insert(0, api_version)
    first_error: ProtocolError | None = None
    for version in candidates:
        try:
            spans = codec.spans(message, version, buf, 4)
            _check_end(buf, spans.end, message, version)
            start, end = spans.fields["ApiKeys"]
            entries, _ = codec.decode_field(message, version, "ApiKeys", buf, start, end=end)
            break
        except ProtocolError as exc:
            if first_error is None:
                first_error = exc
    else:
        assert first_error is not None
        raise first_error
    kept = []
    changed = False
    for entry in entries:
        ours = _advertised_range(entry["ApiKey"])
        if ours is None:
            changed = True
            continue
        low = max(entry["MinVersion"], ours[0])
        high = min(entry["MaxVersion"], ours[1])
        if low > high:
            changed = True
            continue
        if (low, high) != (entry["MinVersion"], entry["MaxVersion"]):
            entry["MinVersion"], entry["MaxVersion"] = low, high
            changed = True
        kept.append(entry)
    if not changed:
        return bytes(buf)
    return _splice(buf, [(start, end, codec.encode_field(message, version, "ApiKeys", kept))])


def api_versions_unsupported_response(correlation_id: int) -> bytes:
    """What a broker answers to an ApiVersions request at a version it does not know: a v0
    response (header v0) with UNSUPPORTED_VERSION and the ApiVersions range it supports, so the
    client retries at a version both know (KIP-511)."""
    spec = API_KEYS[_API_VERSIONS]
    body = codec.encode(API_VERSIONS_RESPONSE, 0, {
        "ErrorCode": _UNSUPPORTED_VERSION,
        "ApiKeys": [{"ApiKey": _API_VERSIONS, "MinVersion": spec.min_version,
                     "MaxVersion": spec.max_version}],
    })
    return INT32.pack(correlation_id) + body


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


def sasl_handshake_v0_succeeded(payload: Buffer) -> bool:
    """A SaslHandshake v0 response (header v0: correlation id, then error code) says OK."""
    if len(payload) < 6:
        raise ProtocolError(f"SaslHandshake response of {len(payload)} bytes is too short for "
                            "a header and an error code")
    return bool(INT16.unpack_from(payload, 4)[0] == 0)

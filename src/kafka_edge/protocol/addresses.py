"""Address rewriting of broker responses: every broker address an answer names is replaced by
the address the mapper gives for it, the edge address clients must use instead (pure: bytes in,
bytes or None out).

``payload`` always means one frame *without* its int32 size prefix.

Address-bearing responses (Apache Kafka 4.4's message definitions, the JSON files the codecs are
generated from):

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
from kafka_edge.protocol.errors import ProtocolError
from kafka_edge.protocol.messages import (
    API_KEYS,
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
    Buffer,
    read_uvarint,
    skip_tagged_section,
    write_tagged_section,
)
from kafka_edge.protocol.schema import Message

__all__ = [
    "FIRST_ADDRESS_VERSION",
    "MAX_PARSED_VERSION",
    "REWRITTEN_APIS",
    "AddressMapper",
    "produce_has_no_endpoints",
    "rewrite_response",
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
    codec.check_end(buf, spans.end, message, api_version)
    replacements = _REWRITERS[api_key](api_version, buf, spans, mapper)
    if not replacements:
        return None
    return codec.splice(buf, replacements)


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


def _map_entry(entry: dict[str, Any], node_id: int, mapper: AddressMapper,
               is_broker: bool) -> bool:
    """Map one {Host, Port} entry in place; True if it changed."""
    host, port = mapper(node_id, entry["Host"], entry["Port"], is_broker)
    if host == entry["Host"] and port == entry["Port"]:
        return False
    entry["Host"] = host
    entry["Port"] = port
    return True


# -- the per-API rewriters: the (start, end, new bytes) replacements of one response ------------

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


# -- Produce and Fetch: the top-level tagged NodeEndpoints --------------------------------------


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
                if length == 0:
                    return False  # a null Name (not nullable): the general path refuses it
                pos += length - 1
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
    codec.check_end(buf, spans.end, message, version)
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

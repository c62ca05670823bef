"""Fuzz targets for the Kafka protocol layer: each takes the fuzzer's bytes and checks the
proxy's invariants, raising AssertionError (or any exception other than the ProtocolError a
malformed input is allowed to raise) when one breaks.

Input layouts are plain bytes so that a crash file replays without the fuzzer: the first byte
or two choose a case (API and version, chunk size), the rest is the input proper.
"""

from __future__ import annotations

import contextlib
import struct
from typing import Any

from kafka_edge.protocol import codec
from kafka_edge.protocol.addresses import (
    FIRST_ADDRESS_VERSION,
    MAX_PARSED_VERSION,
    REWRITTEN_APIS,
    rewrite_response,
)
from kafka_edge.protocol.api_versions import ADVERTISED_MIN_VERSION, rewrite_api_versions
from kafka_edge.protocol.errors import ProtocolError
from kafka_edge.protocol.messages import API_KEYS, API_VERSIONS_RESPONSE, RESPONSES
from kafka_edge.protocol.peeks import (
    produce_acks,
    produce_acks_fast,
    request_header,
    sasl_handshake_v0_succeeded,
)
from kafka_edge.protocol.primitives import skip_tagged_section
from kafka_edge.protocol.request_stream import RequestStream
from kafka_edge.protocol.response_stream import ResponseStream
from kafka_edge.protocol.sasl_v0 import (
    FOLLOWED_MECHANISMS,
    SaslV0Exchange,
    handshake_mechanism,
    handshake_refusal,
)
from kafka_edge.protocol.stream import ConnectionState

MAX_FRAME = 1 << 16
REWRITE_CASES = [(key, v) for key in sorted(REWRITTEN_APIS)
                 for v in range(RESPONSES[key].valid[0], MAX_PARSED_VERSION[key] + 1)]
EDGE_PORT = 9092


def edge(node_id: int, host: str, port: int, is_broker: bool) -> tuple[str, int]:
    """The mapper: every address becomes the edge's name for its node."""
    return f"edge-{node_id}.example", EDGE_PORT


def chunks(data: bytes, size: int) -> list[bytes]:
    """``data`` cut in pieces of ``size`` bytes (0: one piece)."""
    if size <= 0:
        return [data]
    return [data[i:i + size] for i in range(0, len(data), size)]


# -- request stream: chunking never changes what passes, and it passes unchanged ----------------


def _run_requests(stream: bytes, size: int) -> tuple[bytes, bytes, str | None, list[Any]]:
    state = ConnectionState()
    forward, reply = bytearray(), bytearray()
    requests = RequestStream(state, forward.extend, reply.extend, MAX_FRAME)
    error = None
    for piece in chunks(stream, size):
        try:
            requests.feed(piece)
        except ProtocolError as exc:
            error = str(exc)
            break
    ids = [c for c, *_ in state.in_flight]
    assert len(ids) == len(set(ids)) == len(state.in_flight_ids), "in-flight ids not unique"
    return bytes(forward), bytes(reply), error, [x[:3] for x in state.in_flight]


def _frames(stream: bytes) -> list[bytes]:
    """The whole size-prefixed frames at the start of ``stream``."""
    out, pos = [], 0
    while len(stream) - pos >= 4:
        size = struct.unpack_from(">i", stream, pos)[0]
        if size < 0 or len(stream) - pos - 4 < size:
            break
        out.append(stream[pos:pos + 4 + size])
        pos += 4 + size
    return out


def _answered_by_proxy(frame: bytes) -> bool:
    """An ApiVersions request at a version the proxy does not know: answered, not forwarded."""
    if len(frame) < 8:
        return False
    key, version = struct.unpack_from(">hh", frame, 4)
    return bool(key == 18 and version > API_KEYS[18].max_version)


def request_stream(data: bytes) -> None:
    if not data:
        return
    size, stream = data[0] % 32, data[1:]
    whole = _run_requests(stream, 0)
    cut = _run_requests(stream, size)
    forwarded, _, error, tracked = cut
    # what reaches the broker is the client's frames, unchanged, less those the proxy answers
    frames = _frames(stream)
    kept = b"".join(f for f in frames if not _answered_by_proxy(f))
    rest = stream[sum(map(len, frames)):]
    assert (kept + rest).startswith(forwarded), "a request was changed on its way to the broker"
    # an error is raised at the same frame whatever the chunking; before it, the same passed
    assert (whole[2] is None) == (error is None), (whole[2], error)
    if error is None:
        assert whole == cut, "chunking changed the outcome"
    else:
        assert whole[0].startswith(forwarded) or forwarded.startswith(whole[0])
        assert tracked[:len(whole[3])] == whole[3][:len(tracked)]


# -- response stream: answers pair with requests; the stream agrees with rewrite_response --------


def _frame(payload: bytes) -> bytes:
    return struct.pack(">i", len(payload)) + payload


def response_stream(data: bytes) -> None:
    """data: [case, chunk size, answer payload...]: one request of that case is tracked, the
    broker's answer (the payload, framed) is fed in chunks. What reaches the client is exactly
    what ``rewrite_response`` makes of the payload (or the payload itself), framed."""
    if len(data) < 3:
        return
    key, version = REWRITE_CASES[data[0] % len(REWRITE_CASES)]
    size, payload = data[1] % 64, struct.pack(">i", 7) + data[2:]
    state = ConnectionState()
    out = bytearray()
    responses = ResponseStream(state, out.extend, edge, MAX_FRAME)
    state.expect(7, key, version)
    try:
        expected = rewrite_response(key, version, payload, edge) \
            if version >= FIRST_ADDRESS_VERSION.get(key, 0) else None
    except ProtocolError:
        expected = b"error"
    try:
        for piece in chunks(_frame(payload), size):
            responses.feed(piece)
    except ProtocolError:
        assert expected == b"error" or len(payload) + 4 > MAX_FRAME, \
            "the stream refused an answer rewrite_response accepts"
        return
    if expected == b"error":
        # the stream may pass an answer it need not parse (Produce without endpoints is walked
        # by a faster path); it must then be passed unchanged
        assert bytes(out) == _frame(payload), "an unparsable answer was changed"
        return
    assert not state.in_flight
    if bytes(out) == _frame(expected if expected is not None else payload):
        return
    # a Fetch v16+ answer not read whole is walked as it streams (protocol/fetch_stream.py): its
    # size was sent before its endpoints were seen, so they are padded or left out instead
    assert key == 1 and version >= 16, "the stream and rewrite_response disagree"
    assert len(out) == len(payload) + 4, "a streamed Fetch answer changed its length"
    _same_but_endpoints(version, payload, bytes(out[4:]))


def _same_but_endpoints(version: int, payload: bytes, out: bytes) -> None:
    message = RESPONSES[1]
    try:
        before, _ = codec.decode(message, version, payload, _body(message, version, payload))
    except ProtocolError:
        # the broker's answer does not decode whole (the walk and the rewrite only check what
        # they read): its addresses must still re-parse and name the edge
        try:
            fields = _address_fields(1, version, out)
        except ProtocolError as exc:
            raise AssertionError(f"streamed endpoints do not re-parse: {exc}") from None
        assert _mapped(_addresses(1, version, fields)), "an upstream address survived"
        return
    try:
        after, end = codec.decode(message, version, out, _body(message, version, out))
    except ProtocolError as exc:
        raise AssertionError(f"the streamed Fetch answer does not re-parse: {exc}") from None
    assert end == len(out)
    assert _mapped(_addresses(1, version, after)), "an upstream address survived a rewrite"
    for name in before:
        if name not in ("NodeEndpoints", codec.UNKNOWN_TAGS):
            assert before[name] == after[name], f"{name} changed"


# -- the rewritten response codecs: output re-parses, no upstream address survives --------------


def _body(message: Any, version: int, buf: bytes) -> int:
    pos = 4
    if message.is_flexible(version):
        pos = skip_tagged_section(memoryview(buf), pos)
    return pos


def _addresses(key: int, version: int, value: dict[str, Any]) -> list[tuple[int, str, int]]:
    """(node id, host, port) of every usable broker or controller address a decoded answer
    names."""
    if key == 3:
        return [(b["NodeId"], b["Host"], b["Port"]) for b in value["Brokers"] or ()]
    if key == 60:
        return [(b["BrokerId"], b["Host"], b["Port"]) for b in value["Brokers"] or ()]
    if key == 10:
        entries = value["Coordinators"] or () if "Coordinators" in value else [value]
        return [(c["NodeId"], c["Host"], c["Port"]) for c in entries
                if c["ErrorCode"] == 0 and c["NodeId"] != -1]
    if key == 55:
        return [(n["NodeId"], x["Host"], x["Port"]) for n in value.get("Nodes") or ()
                for x in n["Listeners"]]
    return [(e["NodeId"], e["Host"], e["Port"]) for e in value.get("NodeEndpoints") or ()]


def _mapped(entries: list[tuple[int, str, int]]) -> bool:
    return all((host, port) == edge(node, host, port, True) for node, host, port in entries)


_ADDRESS_FIELDS = ("Brokers", "Coordinators", "Nodes", "NodeEndpoints", "ErrorCode", "NodeId",
                   "Host", "Port")


def _address_fields(key: int, version: int, buf: bytes) -> dict[str, Any]:
    """The top-level fields that hold addresses, decoded alone (the rest of the answer need
    not decode: the rewrite copies it as it came)."""
    message = RESPONSES[key]
    spans = codec.spans(message, version, buf, _body(message, version, buf))
    value = {name: codec.decode_field(message, version, name, buf, start, end=end)[0]
             for name, (start, end) in spans.fields.items() if name in _ADDRESS_FIELDS}
    if key in (0, 1) and 0 in spans.tags:
        start, end = spans.tags[0]
        value["NodeEndpoints"] = codec.decode_field(message, version, "NodeEndpoints", buf,
                                                    start, end=end)[0]
    return value


def rewrite(data: bytes) -> None:
    """Whatever the answer, once rewritten no address in it is the broker's: the address
    fields re-parse and each names the edge; an answer that decoded whole still does."""
    if not data:
        return
    key, version = REWRITE_CASES[data[0] % len(REWRITE_CASES)]
    payload = data[1:]
    message = RESPONSES[key]
    try:
        out = rewrite_response(key, version, payload, edge)
    except ProtocolError:
        return
    try:
        before, _ = codec.decode(message, version, payload, _body(message, version, payload))
    except ProtocolError:
        before = None
    if out is None:
        if version >= FIRST_ADDRESS_VERSION.get(key, 0):
            fields = _address_fields(key, version, payload)
            assert _mapped(_addresses(key, version, fields)), "an upstream address was left"
        return
    try:
        fields = _address_fields(key, version, out)
    except ProtocolError as exc:
        raise AssertionError(f"the rewritten addresses do not re-parse: {exc}") from None
    assert _mapped(_addresses(key, version, fields)), "an upstream address survived a rewrite"
    if before is not None:
        try:
            after, end = codec.decode(message, version, out, _body(message, version, out))
        except ProtocolError as exc:
            raise AssertionError(f"the rewritten answer does not re-parse: {exc}") from None
        assert end == len(out), "the rewritten answer has bytes after its end"
        assert len(_addresses(key, version, after)) == len(_addresses(key, version, before))


# -- ApiVersions editor ------------------------------------------------------------------------


def _api_keys(version: int, buf: bytes) -> tuple[int, list[dict[str, Any]]] | None:
    """(version, ApiKeys) of an ApiVersions answer read the way the editor reads it (its
    version, else v0), or None."""
    for v in ([version] if 0 < version <= API_VERSIONS_RESPONSE.valid[1] else []) + [0]:
        try:
            spans = codec.spans(API_VERSIONS_RESPONSE, v, buf, 4)
            codec.check_end(buf, spans.end, API_VERSIONS_RESPONSE, v)
            start, end = spans.fields["ApiKeys"]
            keys, _ = codec.decode_field(API_VERSIONS_RESPONSE, v, "ApiKeys", buf, start,
                                         end=end)
        except ProtocolError:
            continue
        return v, keys
    return None


def _decodes(version: int, buf: bytes) -> bool:
    try:
        codec.decode_all(API_VERSIONS_RESPONSE, version, buf, 4)
    except ProtocolError:
        return False
    return True


def api_versions(data: bytes) -> None:
    """The edited answer re-parses, advertises only what the proxy relays (each range inside
    Kafka 4.4's), decodes whole if the broker's did, and editing it again changes nothing."""
    if not data:
        return
    version, payload = data[0] % 9 - 1, data[1:]
    try:
        out = rewrite_api_versions(version, payload)
    except ProtocolError:
        return
    parsed = _api_keys(version, out)
    assert parsed is not None, "the edited ApiVersions answer does not re-parse"
    used, keys = parsed
    for entry in keys:
        spec = API_KEYS.get(entry["ApiKey"])
        assert spec is not None, f"unknown API key {entry['ApiKey']} advertised"
        low = ADVERTISED_MIN_VERSION.get(spec.key, spec.min_version)
        assert low <= entry["MinVersion"] <= entry["MaxVersion"] <= spec.max_version, entry
    if _decodes(used, payload):
        assert _decodes(used, out), "the broker's answer decoded whole, the edited one not"
    assert rewrite_api_versions(version, out) == out, "editing twice changed the answer again"


# -- request header peek: the fast path agrees with the general one ------------------------------


def request_peek(data: bytes) -> None:
    if not data:
        return
    version, payload = data[0] % 16, data[1:]
    if len(payload) >= 8:
        assert request_header(payload) == struct.unpack_from(">hhi", payload)
    frame = struct.pack(">i", len(payload)) + payload
    fast = produce_acks_fast(frame, 0, len(frame), version)
    try:
        slow = produce_acks(payload, version)
    except ProtocolError:
        slow = None
        assert fast is None, "the fast peek read acks from a request the general one refuses"
    if fast is not None:
        assert fast == slow, f"fast acks {fast} != general {slow}"
    assert slow is None or -(2**15) <= slow < 2**15
    try:
        sasl_handshake_v0_succeeded(payload)
    except ProtocolError:
        assert len(payload) < 6


# -- the SASL v0 phase tracker -------------------------------------------------------------------

MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER", "GSSAPI", "OTHER")


def sasl_v0(data: bytes) -> None:
    """data: [mechanism, then events: 0 answered ok, 1 refused, 2 client token, 3 broker token
    (size from the next byte)]. Once done, nothing is raw; a failed exchange lets nothing pass;
    the tracker's phases follow the lock-step."""
    if not data:
        return
    exchange = SaslV0Exchange(MECHANISMS[data[0] % len(MECHANISMS)])
    broker_tokens = 0
    for i in range(1, len(data) - 1, 2):
        event, size = data[i] % 4, data[i + 1]
        was_raw, was_done = exchange.raw, exchange.done
        try:
            if event < 2:
                exchange.handshake_answered(event == 0)
            elif event == 2:
                exchange.client_token(size)
            else:
                exchange.broker_token(size)
                broker_tokens += 1
        except ProtocolError:
            continue
        assert not was_done, "an event was accepted after the exchange ended"
        assert event < 2 or was_raw, "a token was accepted outside the raw phase"
        assert not (exchange.raw and exchange.done)
    assert broker_tokens <= 4, "more broker tokens than any mechanism exchanges"
    payload = data[1:]
    with contextlib.suppress(ProtocolError):
        assert handshake_mechanism(payload).isascii()
    try:
        refusal = handshake_refusal(payload)
    except ProtocolError:
        return
    size, corr, error, count = struct.unpack_from(">iihi", refusal)
    assert size == len(refusal) - 4 and corr == struct.unpack_from(">i", payload)[0]
    assert error == 33 and count >= 0
    pos = 14
    for _ in range(count):
        (length,) = struct.unpack_from(">h", refusal, pos)
        name = refusal[pos + 2:pos + 2 + length]
        assert len(name) == length and name.decode("ascii") in FOLLOWED_MECHANISMS, name
        pos += 2 + length
    assert pos == len(refusal), "the refusal does not re-parse"

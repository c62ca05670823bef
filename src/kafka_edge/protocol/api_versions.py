"""The ApiVersions editor: a broker's ApiVersions answer, intersected with what the proxy can
relay, and the answer the proxy gives itself to an ApiVersions request at a version it does not
know (pure: bytes in, bytes out).

``payload`` always means one frame *without* its int32 size prefix.
"""

from __future__ import annotations

from kafka_edge.protocol import codec
from kafka_edge.protocol.errors import ProtocolError
from kafka_edge.protocol.messages import API_KEYS, API_VERSIONS_RESPONSE
from kafka_edge.protocol.primitives import INT32, Buffer

__all__ = [
    "ADVERTISED_MIN_VERSION",
    "api_versions_unsupported_response",
    "rewrite_api_versions",
]

_PRODUCE = 0
_API_VERSIONS = 18
_UNSUPPORTED_VERSION = 35

# The minimum version advertised for an API when it differs from the request's validVersions.
# Kafka brokers advertise Produce from v0 although they reject v0-2 (KAFKA-18659: librdkafka
# derives features such as compression support from Produce v0-2 being listed);
# ApiKeys.PRODUCE_API_VERSIONS_RESPONSE_MIN_VERSION = 0. The proxy never needs to parse those
# versions (Produce < v10 carries no address), so it advertises what the broker advertises.
ADVERTISED_MIN_VERSION: dict[int, int] = {_PRODUCE: 0}


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
            codec.check_end(buf, spans.end, message, version)
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
    return codec.splice(buf, [(start, end, codec.encode_field(message, version, "ApiKeys", kept))])


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

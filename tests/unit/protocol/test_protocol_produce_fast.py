"""The specialised Produce-response walk agrees with the generic schema walk."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from protocol_strategies import message_values

from kafka_edge.protocol import codec
from kafka_edge.protocol.addresses import produce_has_no_endpoints
from kafka_edge.protocol.messages import PRODUCE_RESPONSE


@pytest.mark.parametrize("version", range(10, PRODUCE_RESPONSE.valid[1] + 1))
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_fast_walk_matches_the_generic_walk(version: int, data: st.DataObject) -> None:
    value = data.draw(message_values(PRODUCE_RESPONSE, version, max_list=3), label="value")
    body = codec.encode(PRODUCE_RESPONSE, version, value)
    buf = memoryview(b"\x00\x00\x00\x07\x00" + body)  # header v1: correlation id, no tags
    spans = codec.spans(PRODUCE_RESPONSE, version, buf, 5)
    assert produce_has_no_endpoints(buf, 5, version) is (not spans.tags)
    # a cut-off or extended answer is never taken for a clean one
    assert produce_has_no_endpoints(buf[:-1], 5, version) is False
    assert produce_has_no_endpoints(memoryview(bytes(buf) + b"\x00"), 5, version) is False


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.integers(min_value=10, max_value=13))
def test_random_bytes_never_raise(data: bytes, version: int) -> None:
    assert produce_has_no_endpoints(memoryview(data), 0, version) in (True, False)

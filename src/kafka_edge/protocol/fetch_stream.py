"""Fetch v16+ answers streamed through while they are walked (the consumer's hot path).

A Fetch answer from v16 on may end with KIP-951 ``NodeEndpoints`` (top-level tag 0): broker
addresses the proxy must rewrite. They come after every partition's records, so an answer
collected whole before it is forwarded costs a copy of every byte a consumer reads and holds
back the first byte until the last one has arrived (store and forward; what it cost is measured
in docs/performance.md).

``FetchWalk`` instead walks one answer as its bytes arrive and lets everything before the
top-level tagged section go straight on: partition headers are parsed, records skipped by
their length, and only the tail (the tagged section, a few bytes unless it holds endpoints) is
held until the frame ends. The size prefix has then long been sent, so a rewritten tail must
keep the broker's length: rewritten endpoints are followed by an unknown tagged field of
padding (which every Kafka client skips, as the protocol requires) when they are at least 6
bytes shorter (the padding field's tag alone takes 5), and when they are longer, or shorter by
1 to 5 bytes, they are left out (``dropped``) rather than sent with a wrong length or with the
broker's address. A client told nothing learns the new leader from Metadata, as it
did before KIP-951. Nothing here reads records.

The layout walked is FetchResponse v16-18 in Kafka 4.4's definition (tests check it against
the generated schema): header (correlation id, tags), ThrottleTimeMs, ErrorCode, SessionId,
Responses[] { TopicId, Partitions[] { PartitionIndex, ErrorCode, HighWatermark,
LastStableOffset, LogStartOffset (30 bytes), AbortedTransactions[] { ProducerId, FirstOffset,
tags }, PreferredReadReplica, Records, tags }, tags }, tags.
"""

from __future__ import annotations

from typing import Any

from kafka_edge.protocol import codec
from kafka_edge.protocol.addresses import AddressMapper
from kafka_edge.protocol.errors import ProtocolError, Truncated
from kafka_edge.protocol.messages import FETCH_RESPONSE
from kafka_edge.protocol.primitives import (
    read_tagged_section,
    read_uvarint,
    skip_tagged_section,
    uvarint_bytes,
)

FIRST_STREAMED_VERSION = 16
PAD_TAG = 0x7FFFFFFF  # the tag of the padding field: far above any tag Kafka assigns
_U32_MAX = 0xFFFFFFFF

_HEAD, _TOPIC, _PART, _RECORDS, _PART_TAGS, _TOPIC_TAGS, _TAIL = range(7)
_STAGE = ("response header", "topic", "partition", "records", "partition tags", "topic tags",
          "tagged fields")


class FetchWalk:
    """One Fetch v16+ answer, fed in order after its 4-byte size prefix.

    ``feed`` returns what may be forwarded now, in order: bytes held from earlier reads (or
    None), how many bytes from the start of this chunk may go, and the final tail (or None).
    """

    __slots__ = ("_carry", "_mapper", "_parts", "_skip", "_state", "_tail", "_topics",
                 "_version", "dropped", "left", "rewritten")

    def __init__(self, length: int, version: int, mapper: AddressMapper) -> None:
        self.left = length  # bytes of the frame not fed yet
        self._version = version
        self._mapper = mapper
        self._state = _HEAD
        self._carry = b""  # the start of a unit split across reads (not forwarded yet)
        self._skip = 0  # record bytes still to pass
        self._topics = 0
        self._parts = 0
        self._tail = bytearray()
        self.rewritten = False
        self.dropped = False

    @property
    def done(self) -> bool:
        return self.left == 0

    def feed(self, chunk: memoryview) -> tuple[bytes | None, int, bytes | None]:  # noqa: PLR0912 - hot loop: every byte consumers read passes here
        n = len(chunk)
        if n > self.left:
            raise ValueError("fed beyond the end of the frame")
        self.left -= n
        held: bytes | None = None
        pos = 0
        while pos < n:
            state = self._state
            if state == _RECORDS:
                take = min(self._skip, n - pos)
                pos += take
                self._skip -= take
                if self._skip:
                    break
                self._state = _PART_TAGS
                continue
            if state == _TAIL:
                self._tail += chunk[pos:]
                n = pos  # the tail is not forwarded with the chunk
                break
            carry = self._carry
            if carry:
                buf: Any = carry + bytes(chunk)
                start = 0
            else:
                buf, start = chunk, pos
            try:
                end = self._unit(buf, start)
            except Truncated:  # the unit continues in the next read
                self._carry = bytes(buf[start:]) if not carry else buf
                n = pos  # held back until the unit is complete
                break
            if carry:
                held = carry if held is None else held + carry
                self._carry = b""
                pos = end - len(carry)
            else:
                pos = end
            if self._state == _RECORDS and self._skip > (len(chunk) - pos) + self.left:
                raise ProtocolError("broker: Fetch response records run past the end of "
                                    "the frame")
        if self.left == 0:
            if self._state != _TAIL or self._carry:
                raise ProtocolError(f"broker: Fetch response ends inside its "
                                    f"{_STAGE[self._state]}")
            return held, n, self._finish()
        return held, n, None

    def _unit(self, buf: Any, pos: int) -> int:
        """Parse the unit the walk is at, from ``buf[pos:]``; advance the state; return the end."""
        state = self._state
        if state == _HEAD:
            # correlation id, header tags; then throttle time, error code, session id
            pos = skip_tagged_section(buf, pos + 4) + 10
            count, pos = read_uvarint(buf, pos)
            self._topics = count - 1  # topics left, the current one included
            self._state = _TOPIC if self._topics > 0 else _TAIL
        elif state == _TOPIC:
            count, pos = read_uvarint(buf, pos + 16)
            self._parts = count - 1  # partitions left in this topic, the current one included
            self._state = _PART if self._parts > 0 else _TOPIC_TAGS
        elif state == _PART:
            count, pos = read_uvarint(buf, pos + 30)  # aborted transactions (compact, nullable)
            for _ in range(count - 1):
                pos = skip_tagged_section(buf, pos + 16)
            length, pos = read_uvarint(buf, pos + 4)  # preferred read replica; records (nullable)
            self._skip = length - 1 if length else 0
            self._state = _RECORDS if self._skip else _PART_TAGS
        elif state == _PART_TAGS:
            pos = skip_tagged_section(buf, pos)
            self._parts -= 1
            self._state = _PART if self._parts > 0 else _TOPIC_TAGS
        elif state == _TOPIC_TAGS:
            pos = skip_tagged_section(buf, pos)
            self._topics -= 1
            self._state = _TOPIC if self._topics > 0 else _TAIL
        return pos

    def _finish(self) -> bytes | None:
        """The tail to send (same length as the broker's), or None to send it unchanged."""
        tail = bytes(self._tail)
        if tail == b"\x00":
            return tail
        fields, end = read_tagged_section(tail, 0)
        if end != len(tail):
            raise ProtocolError(f"broker: {len(tail) - end} bytes after the Fetch response's "
                                "tagged fields")
        spans = {tag: (start, stop) for tag, start, stop in fields}
        if 0 not in spans:
            return tail
        start, stop = spans[0]
        endpoints, _ = codec.decode_field(FETCH_RESPONSE, self._version, "NodeEndpoints",
                                          tail, start, end=stop)
        changed = False
        for entry in endpoints or ():
            host, port = self._mapper(entry["NodeId"], entry["Host"], entry["Port"], True)
            if (host, port) != (entry["Host"], entry["Port"]):
                entry["Host"], entry["Port"] = host, port
                changed = True
        if not changed:
            return tail
        self.rewritten = True
        new = codec.encode_field(FETCH_RESPONSE, self._version, "NodeEndpoints", endpoints)
        kept = [(tag, new if tag == 0 else tail[s:e]) for tag, (s, e) in sorted(spans.items())]
        section = fixed_size_section(kept, len(tail))
        if section is None:
            self.dropped = True
            section = fixed_size_section([f for f in kept if f[0] != 0], len(tail))
            if section is None:  # pragma: no cover - a tail holding tag 0 always has room
                raise ProtocolError("broker: no room to drop Fetch NodeEndpoints")
        return section


def fixed_size_section(fields: list[tuple[int, bytes]], size: int) -> bytes | None:
    """A tagged-field section of exactly ``size`` bytes holding ``fields`` (ascending tags),
    padded when needed with a field of tag ``PAD_TAG`` (and, where one padding field cannot
    hit the size because its length prefix grows by a byte at 128, an empty one of the tag
    before it), or of tags above the last field's if that is higher; None if they do not
    fit."""
    pad_tag = max(PAD_TAG, fields[-1][0] + 2) if fields else PAD_TAG
    if pad_tag > _U32_MAX:
        return None
    body = b"".join(uvarint_bytes(tag) + uvarint_bytes(len(value)) + value
                    for tag, value in fields)
    exact = uvarint_bytes(len(fields)) + body
    if len(exact) == size:
        return exact
    for extra in (b"", uvarint_bytes(pad_tag - 1) + b"\x00"):
        count = len(fields) + (2 if extra else 1)
        head = uvarint_bytes(count) + body + extra + uvarint_bytes(pad_tag)
        room = size - len(head)  # for the padding's length prefix and its bytes
        for prefix in range(1, 6):
            pad = room - prefix
            if pad >= 0 and len(uvarint_bytes(pad)) == prefix:
                return head + uvarint_bytes(pad) + bytes(pad)
    return None

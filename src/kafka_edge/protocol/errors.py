"""Errors of the protocol layer, split the h11 way: the peer's fault or ours.

* ``ProtocolError``: the bytes we were given break the Kafka protocol (truncated, impossible
  length, invalid UTF-8, trailing garbage, ...). The connection they came from cannot be trusted
  any more; the relay should close it. The message says what was wrong, where (the field path,
  e.g. ``MetadataResponse.Brokers[2].Host``) and at which byte offset of the payload.
* ``EncodeError``: a value we were asked to encode does not fit the schema (a missing field, a
  port out of range, a string too long). That is a bug on our side or in a caller (e.g. an
  address mapper returning port 70000), never the peer's fault.
"""

from __future__ import annotations

__all__ = ["EncodeError", "ProtocolError"]


class ProtocolError(ValueError):
    """The peer broke the Kafka protocol: malformed or truncated bytes."""

    def __init__(self, message: str, offset: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.offset = offset
        # Field names and [index] parts, innermost first; filled in while the error propagates
        # out of nested struct and array decoders.
        self.path: list[str] = []

    def add_context(self, part: str) -> None:
        self.path.append(part)

    @property
    def where(self) -> str:
        """The field path, outermost first, e.g. ``FetchResponse.Responses[0].Partitions[3]``."""
        out = ""
        for part in reversed(self.path):
            out += part if (not out or part.startswith("[")) else "." + part
        return out

    def __str__(self) -> str:
        text = self.message
        if self.offset is not None:
            text += f" at offset {self.offset}"
        where = self.where
        return f"{where}: {text}" if where else text


class Truncated(ProtocolError):
    """The bytes end before the value does. Wrong for a whole frame; for a prefix of one (a
    header peek, a streamed answer) it means "wait for more"."""


class EncodeError(ValueError):
    """A value cannot be encoded with its schema (our bug or a caller's bad value)."""

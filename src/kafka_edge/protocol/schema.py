"""The shapes that ``messages.py`` (generated) uses to describe Kafka messages.

Each message is described once, with the versions each field exists in, the way Kafka's own
JSON message definitions do (``clients/src/main/resources/common/message/*.json``); the codec
(``codec.py``) derives the layout of any one version from that description.

Version ranges are ``(first, last)``, inclusive, ``last`` None meaning "and every later version"
(Kafka's ``"3+"``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = [
    "ApiSpec",
    "Array",
    "Field",
    "FieldType",
    "Message",
    "Primitive",
    "Struct",
    "Versions",
    "in_versions",
]

Versions = tuple[int, int | None]

Primitive = Literal[
    "bool",
    "int8",
    "int16",
    "uint16",
    "int32",
    "uint32",
    "int64",
    "float64",
    "string",
    "bytes",
    "records",
    "uuid",
]


def in_versions(versions: Versions | None, version: int) -> bool:
    if versions is None:
        return False
    first, last = versions
    return first <= version and (last is None or version <= last)


@dataclass(frozen=True, slots=True)
class ApiSpec:
    """One request type a broker listener accepts, as Kafka 4.4 defines it."""

    key: int
    name: str
    min_version: int  # the request's validVersions
    max_version: int
    request_flexible_from: int | None  # first flexible version; None: never flexible
    response_flexible_from: int | None


@dataclass(frozen=True, slots=True)
class Struct:
    """A struct type: an ordered field list. Regular fields go on the wire in this order, then
    (in flexible versions) one tagged-field section holding the tagged ones."""

    name: str
    fields: tuple[Field, ...]


@dataclass(frozen=True, slots=True)
class Array:
    """``[]T``: an array of a primitive or of a struct."""

    item: Primitive | Struct


FieldType = Primitive | Struct | Array


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    type: FieldType
    versions: Versions
    nullable: Versions | None = None  # nullableVersions
    tag: int | None = None
    tagged: Versions | None = None  # taggedVersions: where the field lives in the tagged section

    def present(self, version: int) -> bool:
        return in_versions(self.versions, version)

    def is_tagged(self, version: int) -> bool:
        return self.tag is not None and in_versions(self.tagged, version)

    def is_nullable(self, version: int) -> bool:
        return in_versions(self.nullable, version)


@dataclass(frozen=True, slots=True)
class Message:
    """A request or response body: its API key, valid versions and flexible versions."""

    api_key: int
    valid: tuple[int, int]
    flexible_from: int | None
    body: Struct

    @property
    def name(self) -> str:
        return self.body.name

    def is_flexible(self, version: int) -> bool:
        return self.flexible_from is not None and version >= self.flexible_from

    def versions(self) -> range:
        return range(self.valid[0], self.valid[1] + 1)

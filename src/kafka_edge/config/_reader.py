"""Reading untyped YAML data at a key path, collecting every error instead of stopping at the first.

The pieces:

- :class:`At` is a place in the document (``clusters[0].upstream``) plus the shared
  :class:`Context` (the error list, the base folder for relative paths, the environment).
- A :class:`Conv` turns the raw value found at a place into a typed value. It raises
  :class:`Invalid` with a message ("expected ..., got ...") and the caller records it at the key
  path; a converter that reads a nested mapping records its own errors and raises :class:`Failed`.
- :class:`Section` reads one mapping: ``get`` never raises. On a bad value it records the error and
  returns :data:`POISON` typed as the wanted value, so a section reads all its keys and reports
  every problem. A section builds its model object only after ``finish()`` (which raises
  :class:`Failed` if any key was bad), and guards checks between keys with :func:`valid`.
"""

from __future__ import annotations

import difflib
import json
import math
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar, cast

T = TypeVar("T")


class Invalid(Exception):
    """The value at a key is wrong; the message says what was expected (without the path)."""


class Failed(Exception):
    """Reading a nested value failed; its errors are recorded already."""


@dataclass(slots=True)
class Context:
    base_dir: Path  # relative file paths are resolved against this (absolute) folder
    env: Mapping[str, str]
    errors: list[str] = field(default_factory=list)
    # names only (``kafka-edge dns``): no file is opened or checked, no secret is read
    names_only: bool = False


_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True, slots=True)
class At:
    """A place in the document, such as ``clusters[0].upstream.tls``."""

    ctx: Context
    path: str = ""

    def key(self, name: str) -> At:
        part = name if _IDENTIFIER.fullmatch(name) else f"[{json.dumps(name)}]"
        if not self.path or part.startswith("["):
            return At(self.ctx, f"{self.path}{part}")
        return At(self.ctx, f"{self.path}.{part}")

    def index(self, i: int) -> At:
        return At(self.ctx, f"{self.path}[{i}]")

    def error(self, message: str) -> None:
        self.ctx.errors.append(f"{self.path}: {message}" if self.path else message)


class _Poison:
    def __repr__(self) -> str:
        return "<invalid>"


POISON: Any = _Poison()
"""What ``Section.get`` returns for a bad value. Never ends up in a model object."""


def valid(*values: object) -> bool:
    """True if none of ``values`` is POISON: guard checks that combine several keys."""
    return all(value is not POISON for value in values)


def describe(value: object) -> str:
    """A short, YAML-flavoured rendering of a value for "got ..." in messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        text = json.dumps(value, ensure_ascii=False)
        return text if len(text) <= 80 else text[:76] + '..."'
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return f"{type(value).__name__} {value}"


def kind(value: object) -> str:
    """The type of a value without the value itself (for secrets)."""
    if value is None:
        return "null"
    for cls, name in ((bool, "a boolean"), (int, "a number"), (float, "a number"),
                      (str, "a string"), (list, "a list"), (dict, "a mapping")):
        if isinstance(value, cls):
            return name
    return f"a {type(value).__name__}"


def wrong(expected: str, value: object) -> Invalid:
    return Invalid(f"expected {expected}, got {describe(value)}")


@dataclass(frozen=True, slots=True)
class Conv(Generic[T]):
    """A converter: raw value at a place -> typed value; ``expected`` describes what it accepts."""

    expected: str
    parse: Callable[[object, At], T]


class _Required(Enum):
    REQUIRED = "required"


REQUIRED = _Required.REQUIRED


def did_you_mean(word: str, choices: Sequence[str]) -> str:
    match = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    if not match:
        match = [c for c in choices if c.lower() == word.lower()]
    return f'; did you mean "{match[0]}"?' if match else ""


class Section:
    """One mapping being read. Unknown keys are reported when the section is opened."""

    def __init__(
        self, value: object, at: At, keys: Sequence[str], *, null_is_empty: bool = False
    ) -> None:
        if value is None and null_is_empty:
            value = {}
        if not isinstance(value, dict):
            raise wrong(f"a mapping with keys {', '.join(keys)}", value)
        self.data: dict[str, object] = {}
        self.at = at
        self.failed = False
        for key, item in value.items():
            if not isinstance(key, str):
                at.error(f"unknown key {describe(key)} (expected one of: {', '.join(keys)})")
            elif key not in keys:
                hint = did_you_mean(key, keys)
                expected = f" (expected one of: {', '.join(keys)})"
                at.key(key).error(f"unknown key{hint or expected}")
            else:
                self.data[key] = item

    def has(self, key: str) -> bool:
        """Is ``key`` present with a non-null value?"""
        return self.data.get(key) is not None

    def get(
        self, key: str, conv: Conv[T], default: T | Literal[_Required.REQUIRED] = REQUIRED
    ) -> T:
        at = self.at.key(key)
        if key not in self.data:
            if default is REQUIRED:
                self.fail(key, f"required key is missing (expected {conv.expected})")
                return cast(T, POISON)
            return default
        try:
            return conv.parse(self.data[key], at)
        except Invalid as exc:
            at.error(str(exc))
        except Failed:
            pass
        self.failed = True
        return cast(T, POISON)

    def section(self, key: str, conv: Conv[T]) -> T:
        """A nested mapping whose keys all have defaults: absent reads as empty."""
        if key not in self.data:
            self.data[key] = None
        return self.get(key, conv)

    def items(self, key: str, conv: Conv[T], *, required: bool) -> list[tuple[int, T]]:
        """A list whose good items are wanted even when others are bad: (index, value) pairs of
        the items that converted. Absent or null reads as empty; ``required`` wants one item."""
        at = self.at.key(key)
        raw = self.data.get(key)
        expected = _list_expected(conv, required)
        if raw is None and not required:
            return []
        if raw is None:
            self.fail(key, f"required key is missing (expected {expected})")
            return []
        if not isinstance(raw, list):
            self.fail(key, str(wrong(expected, raw)))
            return []
        if required and not raw:
            self.fail(key, f"expected {expected}, got an empty list")
        out: list[tuple[int, T]] = []
        for i, item in enumerate(raw):
            try:
                out.append((i, conv.parse(item, at.index(i))))
            except Invalid as exc:
                at.index(i).error(str(exc))
                self.failed = True
            except Failed:
                self.failed = True
        return out

    def fail(self, key: str | None, message: str) -> None:
        """Record an error at ``key`` (None: at this mapping) and mark the section failed."""
        (self.at if key is None else self.at.key(key)).error(message)
        self.failed = True

    def finish(self) -> None:
        if self.failed:
            raise Failed


# -- converters ----------------------------------------------------------------------------------


def nullable(conv: Conv[T]) -> Conv[T | None]:
    def parse(value: object, at: At) -> T | None:
        return None if value is None else conv.parse(value, at)

    return Conv(f"{conv.expected} or null", parse)


def _list_expected(item: Conv[Any], non_empty: bool) -> str:
    items = item.expected
    if items.startswith("a mapping"):
        items = "mappings" + items.removeprefix("a mapping")
    return f"a {'non-empty ' if non_empty else ''}list of {items}"


def list_of(item: Conv[T], *, non_empty: bool) -> Conv[tuple[T, ...]]:
    expected = _list_expected(item, non_empty)

    def parse(value: object, at: At) -> tuple[T, ...]:
        if not isinstance(value, list):
            raise wrong(expected, value)
        if non_empty and not value:
            raise Invalid(f"expected {expected}, got an empty list")
        out: list[T] = []
        failed = False
        for i, raw in enumerate(value):
            try:
                out.append(item.parse(raw, at.index(i)))
            except Invalid as exc:
                at.index(i).error(str(exc))
                failed = True
            except Failed:
                failed = True
        if failed:
            raise Failed
        return tuple(out)

    return Conv(expected, parse)


def text(expected: str, check: Callable[[str], T]) -> Conv[T]:
    """A string, checked (and perhaps converted) by ``check``, which raises ValueError whose
    message is "expected ..."; the value given is appended as ", got ..."."""

    def parse(value: object, at: At) -> T:
        if not isinstance(value, str):
            raise wrong(expected, value)
        try:
            return check(value)
        except ValueError as exc:
            raise Invalid(f"{exc}, got {describe(value)}") from None

    return Conv(expected, parse)


def _string(value: object, at: At) -> str:
    if not isinstance(value, str) or not value:
        raise wrong("a non-empty string", value)
    return value


STRING: Conv[str] = Conv("a non-empty string", _string)


def _secret_string(value: object, at: At) -> str:
    # Never echo the value: it may be a misplaced password.
    if isinstance(value, str) and value:
        return value
    got = "an empty string" if value == "" else kind(value)
    raise Invalid(f"expected a non-empty string, got {got}")


SECRET_STRING: Conv[str] = Conv("a non-empty string", _secret_string)


def matching(pattern: str, expected: str) -> Conv[str]:
    compiled = re.compile(pattern)

    def parse(value: object, at: At) -> str:
        if not isinstance(value, str) or not compiled.fullmatch(value):
            raise wrong(expected, value)
        return value

    return Conv(expected, parse)


def _boolean(value: object, at: At) -> bool:
    if not isinstance(value, bool):
        raise wrong("true or false", value)
    return value


BOOLEAN: Conv[bool] = Conv("true or false", _boolean)


def integer(low: int, high: int | None = None) -> Conv[int]:
    if high is None:
        expected = f"an integer >= {low}" if low != 1 else "a positive integer"
    else:
        expected = f"an integer from {low} to {high}"

    def parse(value: object, at: At) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise wrong(expected, value)
        if value < low or (high is not None and value > high):
            raise wrong(expected, value)
        return value

    return Conv(expected, parse)


def seconds(*, allow_zero: bool) -> Conv[float]:
    expected = "a number of seconds " + (">= 0" if allow_zero else "> 0")

    def parse(value: object, at: At) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise wrong(expected, value)
        if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
            raise wrong(expected, value)
        return float(value)

    return Conv(expected, parse)


def choice(options: Mapping[str, T]) -> Conv[T]:
    names = list(options)
    expected = " or ".join(f'"{name}"' for name in names) if len(names) <= 2 else (
        "one of " + ", ".join(f'"{name}"' for name in names)
    )

    def parse(value: object, at: At) -> T:
        if isinstance(value, str) and value in options:
            return options[value]
        hint = did_you_mean(value, names) if isinstance(value, str) else ""
        raise Invalid(f"expected {expected}, got {describe(value)}{hint}")

    return Conv(expected, parse)


def _file(value: object, at: At) -> Path:
    if not isinstance(value, str) or not value:
        raise wrong("a file path", value)
    path = Path(value)
    if not path.is_absolute():
        path = at.ctx.base_dir / path
    if at.ctx.names_only:
        return path
    if not path.exists():
        raise Invalid(f"file not found: {path}")
    if not path.is_file():
        raise Invalid(f"expected a file, got a directory or special file: {path}")
    if not os.access(path, os.R_OK):
        raise Invalid(f"file is not readable: {path}")
    return path


FILE: Conv[Path] = Conv("a path to an existing file", _file)
"""An existing, readable file; relative paths are resolved against the config file's folder."""

"""A value that must never reach a log line, a repr or a configuration dump."""

from __future__ import annotations

import hmac
from typing import NoReturn, final


@final
class Secret:
    """Holds a password. ``repr()``, ``str()`` and f-strings show ``***``; ``reveal()`` gives the
    value, so every place that uses it is easy to find. Immutable, comparable (in constant time)
    and hashable, so frozen configuration objects holding one stay comparable and hashable.

    Deliberately not a dataclass: ``dataclasses.asdict`` would turn a dataclass into a dict that
    shows the value.
    """

    __slots__ = ("_value",)
    _value: str

    def __init__(self, value: str) -> None:
        object.__setattr__(self, "_value", value)

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "***"

    def __str__(self) -> str:
        return "***"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash((Secret, self._value))

    def __setattr__(self, name: str, value: object) -> NoReturn:
        raise AttributeError("Secret is immutable")

    def __delattr__(self, name: str) -> NoReturn:
        raise AttributeError("Secret is immutable")

    def __reduce__(self) -> tuple[type[Secret], tuple[str]]:
        # Worker processes receive the configuration by pickling; keep that working.
        return (Secret, (self._value,))

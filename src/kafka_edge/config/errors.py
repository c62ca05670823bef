"""The one exception configuration loading raises."""

from __future__ import annotations

from collections.abc import Iterable


class ConfigError(Exception):
    """The configuration is invalid. ``errors`` lists every problem found, each starting with the
    key path it is about (``clusters[0].upstream.bootstrap_servers[1]: expected ...``);
    ``str()`` gives them one per line."""

    def __init__(self, errors: Iterable[str]) -> None:
        self.errors: list[str] = list(errors)
        super().__init__(self.errors)

    def __str__(self) -> str:
        return "\n".join(self.errors)

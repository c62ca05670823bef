"""Logging set-up: text or JSON lines. Extra fields passed with ``extra=`` appear in both."""

from __future__ import annotations

import json
import logging
import sys
import time

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


def _extras(record: logging.LogRecord) -> dict[str, object]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD and v is not None}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            **_extras(record),
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extras = _extras(record)
        if extras:
            line += " " + " ".join(f"{k}={v}" for k, v in extras.items())
        return line


def setup_logging(level: str = "info", fmt: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger("kafka_edge")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False


class Persisting:
    """A condition that lasts (a cluster unreachable, a certificate file that does not load) is
    logged when it starts, at most once per ``every`` seconds while it lasts (with how long and
    how often it was seen), and when it ends: not once per check."""

    def __init__(self, logger: logging.Logger, every: float = 60.0,
                 level: int = logging.ERROR) -> None:
        self._log = logger
        self._every = every
        self._level = level
        self._since: dict[str, tuple[float, float, int]] = {}  # key -> (start, last log, seen)

    def persists(self, key: str, message: str, *args: object) -> None:
        now = time.monotonic()
        entry = self._since.get(key)
        if entry is None:
            self._since[key] = (now, now, 1)
            self._log.log(self._level, message, *args)
            return
        start, logged, seen = entry
        if now - logged >= self._every:
            self._log.log(self._level, message + " (still, for %.0f s, seen %d times)",
                          *args, now - start, seen + 1)
            self._since[key] = (start, now, seen + 1)
        else:
            self._since[key] = (start, logged, seen + 1)

    def ended(self, key: str, message: str, *args: object) -> None:
        entry = self._since.pop(key, None)
        if entry is not None:
            self._log.info(message + " (after %.0f s)", *args, time.monotonic() - entry[0])

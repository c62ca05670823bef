"""Fuzz targets for what comes before Kafka bytes: the TLS ClientHello (SNI), the PROXY
protocol header, and the configuration loader. Same conventions as targets_protocol.py."""

from __future__ import annotations

import yaml

from kafka_edge.config import ConfigError, parse_config
from kafka_edge.protocol.proxy_header import NeedData, ProxyHeaderError, parse_proxy_header
from kafka_edge.tls.clienthello import NotTls, parse_client_hello


def _hello(data: bytes) -> object:
    try:
        return parse_client_hello(data)
    except NotTls:
        return NotTls


def client_hello(data: bytes) -> None:
    """A ClientHello, once complete, does not change with more bytes; no prefix of a complete
    one is refused; an ASCII name is lowercased."""
    result = _hello(data)
    if result is None or result is NotTls:
        return
    name = result.server_name  # type: ignore[attr-defined]
    if name is not None:
        assert name == name.lower() or not name.isascii(), name
    assert _hello(data + b"\x16\x03\x01\x00\x05extra") == result
    for cut in sorted({len(data) // 3, len(data) // 2, len(data) - 1}):
        assert _hello(data[:cut]) in (None, result), f"a prefix of {cut} bytes was refused"


def _proxy(data: bytes) -> object:
    try:
        return parse_proxy_header(data)
    except ProxyHeaderError:
        return ProxyHeaderError


def proxy_header(data: bytes) -> None:
    """A parsed header says how long it is; the bytes after it change nothing; each prefix of
    it needs more data (never refused, never a different header)."""
    result = _proxy(data)
    if isinstance(result, NeedData) or result is ProxyHeaderError:
        return
    length = result.length  # type: ignore[attr-defined]
    assert 0 < length <= len(data), length
    assert _proxy(data[:length]) == result
    assert _proxy(data[:length] + b"\x00\xff trailing") == result
    for cut in sorted({0, 1, length // 2, length - 1}):
        assert isinstance(_proxy(data[:cut]), NeedData), f"prefix of {cut} bytes not NeedData"
    client = result.client  # type: ignore[attr-defined]
    assert client is None or 0 <= client[1] <= 65535


def config(data: bytes) -> None:
    """Whatever YAML holds, the loader answers a Config or a ConfigError whose every line names
    the key path it is about (or "top level")."""
    try:
        value = yaml.safe_load(data.decode("utf-8", "replace"))
    except (yaml.YAMLError, RecursionError):  # the YAML library's own refusals
        return
    try:
        cfg = parse_config(value, names_only=True, env={"FUZZ_PASSWORD": "secret"})
    except ConfigError as exc:
        assert exc.errors, "a ConfigError without a problem"
        for line in exc.errors:
            assert ": " in line, f"a problem without its key path: {line!r}"
        return
    text = repr(cfg.redacted_dict())
    assert "secret" not in text or "secret" in data.decode("utf-8", "replace").replace(
        "FUZZ_PASSWORD", ""), "a secret from the environment appears in the redacted config"

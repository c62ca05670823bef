"""Reading ``proxy_protocol``, the same block on a listener and on ``port_routing``.

Off unless written: absent, ``null``, ``false`` (the shape the key had before the PROXY protocol
was implemented) and ``mode: off`` all mean off and give None. On, ``trusted_sources`` is
required: a header is believed only from those peers, since whoever can send one chooses the
address logged for the connection.
"""

from __future__ import annotations

import ipaddress

from kafka_edge.config._reader import (
    At,
    Conv,
    Invalid,
    Section,
    choice,
    list_of,
    seconds,
    text,
    valid,
)
from kafka_edge.config.model import ProxyProtocol, ProxyProtocolMode

__all__ = ["PROXY_PROTOCOL"]

_KEYS = ("mode", "trusted_sources", "header_timeout_s")
_MODES: dict[str, ProxyProtocolMode | None] = {"off": None, "optional": "optional",
                                               "required": "required"}
_MODE_CHOICE = choice(_MODES)


def _mode(value: object, at: At) -> ProxyProtocolMode | None:
    if value is False:  # YAML 1.1 reads an unquoted `off` as false
        return None
    return _MODE_CHOICE.parse(value, at)


MODE = Conv(_MODE_CHOICE.expected, _mode)


def _trusted_source(value: str) -> str:
    try:
        return str(ipaddress.ip_network(value.strip(), strict=True))
    except ValueError as exc:
        raise ValueError(f"expected an IP address or a CIDR network such as 10.0.0.0/16 "
                         f"({exc})") from None


TRUSTED_SOURCE = text("an IP address or a CIDR network such as 10.0.0.0/16", _trusted_source)


def _proxy_protocol(value: object, at: At) -> ProxyProtocol | None:
    if value is None or value is False:
        return None
    if value is True:
        raise Invalid("expected a mapping with mode and trusted_sources, got true (headers are "
                      "believed only from the load balancers listed in trusted_sources)")
    s = Section(value, at, _KEYS)
    mode = s.get("mode", MODE)
    if valid(mode) and mode is None:
        for key in ("trusted_sources", "header_timeout_s"):
            if s.has(key):
                s.fail(key, 'expected no value with mode "off" (no header is read)')
        s.finish()
        return None
    trusted = s.get("trusted_sources", list_of(TRUSTED_SOURCE, non_empty=True))
    timeout = s.get("header_timeout_s", seconds(allow_zero=False), 10.0)
    s.finish()
    assert mode is not None
    return ProxyProtocol(mode=mode, trusted_sources=trusted, header_timeout_s=timeout)


PROXY_PROTOCOL = Conv("a mapping with mode and trusted_sources, or null", _proxy_protocol)
"""``proxy_protocol``: a :class:`ProxyProtocol`, or None when off."""

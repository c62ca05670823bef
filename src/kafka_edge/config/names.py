"""Host names, ``host:port`` addresses and ``{node}`` / ``{n}`` name patterns: parsing and matching.

Pure functions, no I/O (no DNS lookups). The parser uses them to validate configuration values;
the model uses them to answer routing questions (which node does this name or address stand for).
Every ``check_*``/``parse_*`` function raises :class:`ValueError` whose message says what was
expected; the caller adds the key path.
"""

from __future__ import annotations

import ipaddress
import re
from typing import NamedTuple

NODE = "{node}"
"""The placeholder that stands for a broker node id in a name or address pattern."""

NUMBER = "{n}"
"""The placeholder that stands for the number in a broker's upstream *name* (MSK Serverless's
``b97-...``), which need not be its node id: patterns with it map names to names."""

PLACEHOLDERS = (NODE, NUMBER)

MAX_NODE_ID = 2**31 - 1
"""Kafka node ids are non-negative int32 values."""

_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?", re.IGNORECASE)
_DNS_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_DIGITS = frozenset("0123456789")


class HostPort(NamedTuple):
    """A parsed ``host:port``; a plain ``(host, port)`` tuple, IPv6 hosts without brackets."""

    host: str
    port: int

    def __str__(self) -> str:
        return format_host_port(self.host, self.port)


def format_host_port(host: str, port: int) -> str:
    """``host:port``, with an IPv6 host in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def is_wildcard(host: str) -> bool:
    """True for the "every address" binds ``0.0.0.0`` and ``::``."""
    try:
        return ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return False


def _looks_numeric(name: str) -> bool:
    # "300.1.1.1" or "1.2.3" are broken IP addresses, not host names (RFC 1123: the last label
    # of a host name is never all digits).
    return name.rsplit(".", 1)[-1].isdigit()


def check_host(host: str) -> str:
    """A host to dial or bind: an IPv4/IPv6 address or a host name (underscores tolerated).

    Returns the host unchanged; raises ValueError if it is neither.
    """
    if is_ip(host):
        return host
    if (
        0 < len(host) <= 253
        and host.isascii()
        and all(_LABEL.fullmatch(label) for label in host.split("."))
        and not _looks_numeric(host)
    ):
        return host
    raise ValueError("expected a host name or IP address")


def check_dns_name(name: str) -> str:
    """A DNS name as TLS clients send in SNI (letters, digits, hyphens); returns it lowercased."""
    lowered = name.lower()
    if is_ip(lowered):
        raise ValueError("expected a DNS name (TLS clients never send an IP address as SNI)")
    if (
        0 < len(lowered) <= 253
        and lowered.isascii()
        and all(_DNS_LABEL.fullmatch(label) for label in lowered.split("."))
        and not _looks_numeric(lowered)
    ):
        return lowered
    raise ValueError(
        "expected a DNS name (labels of letters, digits and inner hyphens, separated by dots)"
    )


IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_allowed_host(entry: str) -> str | IpNetwork:
    """One ``allowed_hosts`` entry: an IP network (an address alone is a /32 or /128), a
    ``*.domain`` suffix (returned as ``.domain``) or an exact host name (lowercased).
    ValueError says what was expected."""
    text = entry.strip()
    if not text:
        raise ValueError("expected a host name, *.domain, an IP address or a CIDR network")
    if "/" in text or is_ip(text):
        try:
            return ipaddress.ip_network(text, strict=True)
        except ValueError as exc:
            raise ValueError(f"expected an IP network such as 10.0.0.0/16 ({exc})") from None
    name = text.lower()
    if name.endswith("."):
        name = name[:-1]
    if name.startswith("*."):
        name = name[1:]
        labels = name[1:].split(".")
    else:
        labels = name.split(".")
    if "*" in name or not all(labels) or not name.isascii():
        raise ValueError("expected a host name or *.domain (a wildcard only as the first label)")
    return name



def parse_host_port(text: str) -> HostPort:
    """``"host:port"`` or ``"[ipv6]:port"`` -> :class:`HostPort`; raises ValueError."""
    if text.startswith("["):
        host, sep, port_text = text[1:].partition("]:")
        if not sep or not is_ip(host) or ":" not in host:
            raise ValueError('expected "[ipv6-address]:port"')
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep:
            raise ValueError('expected "host:port"')
        if ":" in host:
            raise ValueError('expected "host:port" (IPv6 addresses go in brackets: "[::1]:9092")')
        try:
            check_host(host)
        except ValueError:
            raise ValueError('expected "host:port" with a valid host name or IP address') from None
    if not (port_text.isascii() and port_text.isdigit()) or not 1 <= int(port_text) <= 65535:
        raise ValueError('expected "host:port" with a port from 1 to 65535')
    return HostPort(host, int(port_text))


# -- {node} / {n} patterns ------------------------------------------------------------------------


def placeholder_of(pattern: str) -> str:
    """The placeholder a checked pattern holds: :data:`NUMBER` or :data:`NODE`."""
    return NUMBER if NUMBER in pattern else NODE


def split_node_pattern(pattern: str) -> tuple[str, str]:
    """``"b-{node}.x"`` -> ``("b-", ".x")``; the pattern must contain exactly one placeholder,
    ``{node}`` or ``{n}``, once."""
    if sum(pattern.count(p) for p in PLACEHOLDERS) != 1:
        raise ValueError(f"expected a pattern containing {NODE} exactly once (or {NUMBER})")
    prefix, _, suffix = pattern.partition(placeholder_of(pattern))
    if "{" in prefix + suffix or "}" in prefix + suffix:
        raise ValueError(f"expected {NODE} as the only placeholder (or {NUMBER})")
    return prefix, suffix


def check_host_pattern(pattern: str) -> str:
    """An SNI broker name pattern such as ``b-{node}.orders.example.com``; returns it lowercased."""
    lowered = pattern.lower()
    prefix, suffix = split_node_pattern(lowered)
    try:
        check_dns_name(prefix + "0" + suffix)
    except ValueError:
        raise ValueError(
            f"expected a DNS name with {NODE} in it (or {NUMBER}), such as "
            f"\"b-{NODE}.orders.example.com\""
        ) from None
    return lowered


def check_address_pattern(pattern: str, placeholder: str = NODE) -> HostPort:
    """An upstream broker address pattern ``"b-{node}.host:port"``: ``placeholder`` once in the
    host part, a fixed port. Returns the split pattern as ``HostPort(host_template, port)``."""
    host, sep, port_text = pattern.rpartition(":")
    if not sep or host.count(placeholder) != 1:
        raise ValueError(
            f'expected "host:port" with {placeholder} in the host (once), such as '
            f'"b{"-" if placeholder == NODE else ""}{placeholder}.kafka:9098"'
        )
    rest = host.replace(placeholder, "")
    if "{" in rest or "}" in rest:
        raise ValueError(f"expected {placeholder} as the only placeholder")
    if "[" in host or "]" in host:
        raise ValueError("expected a host name pattern (IPv6 address patterns are not supported)")
    address = parse_host_port(host.replace(placeholder, "0") + ":" + port_text)
    return HostPort(host, address.port)


def node_for_name(pattern: str, name: str) -> int | None:
    """The number (node id, or the number a ``{n}`` pattern carries) whose name, by ``pattern``,
    is ``name`` (case-insensitive, a trailing dot ignored), or None. Only the canonical decimal
    spelling matches (``b-01`` is not 1), and only up to :data:`MAX_NODE_ID`."""
    prefix, _, suffix = pattern.partition(placeholder_of(pattern))
    name = name.lower()
    if name.endswith("."):
        name = name[:-1]
    if len(name) <= len(prefix) + len(suffix):
        return None
    if not (name.startswith(prefix) and name.endswith(suffix)):
        return None
    digits = name[len(prefix) : len(name) - len(suffix)]
    if not (digits.isascii() and digits.isdigit()) or (len(digits) > 1 and digits[0] == "0"):
        return None
    if len(digits) > len(str(MAX_NODE_ID)):  # bounded before int(): a peer chose this name
        return None
    node_id = int(digits)
    return node_id if node_id <= MAX_NODE_ID else None


def name_for_node(pattern: str, node_id: int) -> str:
    if not 0 <= node_id <= MAX_NODE_ID:
        raise ValueError(f"node id {node_id} is outside 0..{MAX_NODE_ID}")
    return pattern.replace(placeholder_of(pattern), str(node_id))


def names_overlap(a: str, b: str) -> bool:
    """Can one host name be matched by both ``a`` and ``b``?

    Each argument is either a literal name or a pattern with ``{node}`` or ``{n}``, which here
    stands for any run of digits (including non-canonical ones such as ``007``), so the answer
    errs on the side of reporting an overlap. Decided exactly, by walking both patterns'
    automata in step.
    """
    a, b = a.replace(NUMBER, NODE), b.replace(NUMBER, NODE)
    ta, tb = _tokens(a), _tokens(b)
    alphabet = (set(a.replace(NODE, "")) | set(b.replace(NODE, ""))) | _DIGITS
    start = (_closure(ta, {(0, False)}), _closure(tb, {(0, False)}))
    seen = {start}
    todo = [start]
    while todo:
        sa, sb = todo.pop()
        if (len(ta), False) in sa and (len(tb), False) in sb:
            return True
        for ch in alphabet:
            nxt = (_step(ta, sa, ch), _step(tb, sb, ch))
            if nxt[0] and nxt[1] and nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return False


# A pattern as tokens: one character each, None for the {node} digit run.
_Tokens = list[str | None]
# An automaton state: (token index, inside the digit run at that index).
_States = frozenset[tuple[int, bool]]


def _tokens(pattern: str) -> _Tokens:
    prefix, node, suffix = pattern.partition(NODE)
    return [*prefix, None, *suffix] if node else list(prefix)


def _closure(tokens: _Tokens, states: set[tuple[int, bool]]) -> _States:
    # Having read at least one digit of the run at token i, the run may end here.
    return frozenset(states | {(i + 1, False) for i, in_run in states if in_run})


def _step(tokens: _Tokens, states: _States, ch: str) -> _States:
    out: set[tuple[int, bool]] = set()
    for i, in_run in states:
        if in_run:
            if ch in _DIGITS:
                out.add((i, True))
        elif i < len(tokens):
            token = tokens[i]
            if token is None:
                if ch in _DIGITS:
                    out.add((i, True))
            elif token == ch:
                out.add((i + 1, False))
    return _closure(tokens, out)

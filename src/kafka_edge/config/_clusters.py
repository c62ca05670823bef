"""Reading ``clusters``: each entry's ``upstream`` (bootstrap servers, TLS, SASL for discovery,
broker addresses) and its routing, ``port_routing`` (a port per broker) or ``sni_routing`` (a
name per broker on a listener), and the rules that join them within one entry.

``sni_routing`` names a listener, so the clusters are read after the listeners:
:func:`sni_routing_conv` is given the listeners that were read.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from kafka_edge.config._listeners import SERVER_TLS, UPSTREAM_TLS
from kafka_edge.config._proxy_protocol import PROXY_PROTOCOL
from kafka_edge.config._reader import (
    FILE,
    SECRET_STRING,
    STRING,
    At,
    Conv,
    Section,
    choice,
    did_you_mean,
    list_of,
    nullable,
    seconds,
    text,
    valid,
)
from kafka_edge.config._scalars import (
    ADDRESS_PATTERN,
    ADVERTISED_HOST,
    AWS_REGION,
    BIND_HOST,
    ENV_NAME,
    HOST_PORT,
    NAME,
    NAME_PATTERN,
    NODE_ID,
    PORT,
    SNI_NAME,
    SNI_PATTERN,
)
from kafka_edge.config.model import (
    ClusterConfig,
    Discovery,
    Listener,
    PortRouting,
    SaslCredentials,
    SaslMechanism,
    SniRouting,
    Upstream,
)
from kafka_edge.config.names import (
    NODE,
    NUMBER,
    is_wildcard,
    names_overlap,
    parse_allowed_host,
    placeholder_of,
)
from kafka_edge.config.secret import Secret

_MECHANISMS: dict[str, SaslMechanism] = {
    "SCRAM-SHA-512": "SCRAM-SHA-512", "SCRAM-SHA-256": "SCRAM-SHA-256", "PLAIN": "PLAIN",
}

# -- upstream --------------------------------------------------------------------------------------

_PASSWORD_SOURCES = ("password_env", "password_file", "password")


def _read_password_file(s: Section, path: Path) -> Secret | None:
    try:
        content = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        s.fail("password_file", f"expected UTF-8 text in {path}")
        return None
    except OSError as exc:
        s.fail("password_file", f"cannot read {path}: {exc.strerror}")
        return None
    content = content.removesuffix("\n").removesuffix("\r")
    if not content:
        s.fail("password_file", f"expected a password in {path}, got an empty file")
        return None
    return Secret(content)


def _sasl(value: object, at: At) -> SaslCredentials:
    s = Section(value, at, ("mechanism", "username", *_PASSWORD_SOURCES))
    mechanism = s.get("mechanism", choice(_MECHANISMS))
    username = s.get("username", STRING)
    password_env = s.get("password_env", nullable(ENV_NAME), None)
    password_file = s.get("password_file", nullable(FILE), None)
    literal = s.get("password", nullable(SECRET_STRING), None)
    given = [key for key in _PASSWORD_SOURCES if s.has(key)]
    if not given:
        s.fail(None, "missing password: expected one of password_env (the name of an "
               "environment variable holding it), password_file or password")
    elif len(given) > 1:
        s.fail(None, f"expected only one of {', '.join(_PASSWORD_SOURCES)}, "
               f"got {' and '.join(given)}")
    password: Secret | None = None
    if s.at.ctx.names_only:  # a command that needs names only reads no secret
        s.finish()
        return SaslCredentials(mechanism=mechanism, username=username, password=Secret(""),
                               password_env=password_env, password_file=password_file)
    if valid(password_env) and password_env is not None:
        raw = s.at.ctx.env.get(password_env)
        if raw is None:
            s.fail("password_env", f"expected a set environment variable, but {password_env} "
                   "is not set")
        elif not raw:
            s.fail("password_env", f"expected a password in environment variable {password_env}, "
                   "but it is empty")
        else:
            password = Secret(raw)
    if valid(password_file) and password_file is not None:
        password = _read_password_file(s, password_file)
    if valid(literal) and literal is not None:
        password = Secret(literal)
    s.finish()
    assert password is not None
    return SaslCredentials(
        mechanism=mechanism,
        username=username,
        password=password,
        password_env=password_env,
        password_file=password_file,
    )


SASL = Conv("a mapping with mechanism, username and a password source", _sasl)


def _discovery(value: object, at: At) -> Discovery:
    s = Section(value, at, ("sasl", "refresh_interval_s"), null_is_empty=True)
    sasl = s.get("sasl", nullable(SASL), None)
    refresh_interval_s = s.get("refresh_interval_s", seconds(allow_zero=True), 60.0)
    s.finish()
    return Discovery(sasl=sasl, refresh_interval_s=refresh_interval_s)


DISCOVERY = Conv("a mapping with sasl and refresh_interval_s", _discovery)

_UPSTREAM_KEYS = (
    "bootstrap_servers", "tls", "connect_timeout_s", "broker_address_pattern", "discovery",
    "allowed_hosts", "broker_name_pattern",
)


def _allowed_host(value: str) -> str:
    parse_allowed_host(value)
    return value.strip()


ALLOWED_HOST = text("a host name, *.domain, an IP address or a CIDR network", _allowed_host)


def _upstream(value: object, at: At) -> Upstream:
    s = Section(value, at, _UPSTREAM_KEYS)
    bootstrap_servers = s.get("bootstrap_servers", list_of(HOST_PORT, non_empty=True))
    tls = s.get("tls", nullable(UPSTREAM_TLS), None)
    connect_timeout_s = s.get("connect_timeout_s", seconds(allow_zero=False), 10.0)
    broker_address_pattern = s.get("broker_address_pattern", nullable(ADDRESS_PATTERN), None)
    discovery = s.section("discovery", DISCOVERY)
    allowed_hosts = s.get("allowed_hosts", nullable(list_of(ALLOWED_HOST, non_empty=True)), None)
    name_pattern = s.get("broker_name_pattern", nullable(NAME_PATTERN), None)
    if valid(name_pattern, broker_address_pattern) and None not in (name_pattern,
                                                                    broker_address_pattern):
        s.fail("broker_name_pattern", "expected only one of broker_address_pattern (node ids) "
               "and broker_name_pattern (numbers in the brokers' names), got both")
    s.finish()
    return Upstream(
        bootstrap_servers=bootstrap_servers,
        tls=tls,
        connect_timeout_s=connect_timeout_s,
        broker_address_pattern=broker_address_pattern,
        discovery=discovery,
        allowed_hosts=allowed_hosts,
        broker_name_pattern=name_pattern,
    )


UPSTREAM = Conv("a mapping with bootstrap_servers", _upstream)

# -- routing ---------------------------------------------------------------------------------------

_PORT_ROUTING_KEYS = (
    "bind_host", "bootstrap_port", "broker_port_base", "node_id_min", "node_id_max",
    "advertised_host", "advertised_port_base", "tls", "proxy_protocol",
)


def _port_routing(value: object, at: At) -> PortRouting:
    s = Section(value, at, _PORT_ROUTING_KEYS)
    bind_host = s.get("bind_host", BIND_HOST, "0.0.0.0")
    bootstrap_port = s.get("bootstrap_port", PORT)
    base = s.get("broker_port_base", PORT)
    low = s.get("node_id_min", NODE_ID, 0)
    high = s.get("node_id_max", NODE_ID, 63)
    advertised_host = s.get("advertised_host", nullable(ADVERTISED_HOST), None)
    advertised_base = s.get("advertised_port_base", nullable(PORT), None)
    tls = s.get("tls", nullable(SERVER_TLS), None)
    proxy_protocol = s.get("proxy_protocol", PROXY_PROTOCOL, None)

    if valid(low, high) and high < low:
        s.fail("node_id_max", f"expected an integer >= node_id_min ({low}), got {high}")
    elif valid(low, high, base):
        last = base + high - low
        if last > 65535:
            s.fail("broker_port_base", f"expected a port that leaves room for node ids "
                   f"{low}..{high}, got {base} (the last broker port would be {last} > 65535)")
        elif valid(bootstrap_port) and base <= bootstrap_port <= last:
            s.fail("bootstrap_port", f"expected a port outside the broker ports {base}-{last} "
                   f"(broker_port_base for node ids {low}..{high}), got {bootstrap_port}")
        if (valid(advertised_base) and advertised_base is not None
                and advertised_base + high - low > 65535):
            s.fail("advertised_port_base", f"expected a port that leaves room for node ids "
                   f"{low}..{high}, got {advertised_base} (the last advertised port would be "
                   f"{advertised_base + high - low} > 65535)")
    if valid(bind_host, advertised_host) and advertised_host is None and is_wildcard(bind_host):
        s.fail("advertised_host", f'required when bind_host is the wildcard "{bind_host}" '
               "(expected the host name or IP address clients use to reach the edge)")
    s.finish()
    return PortRouting(
        bind_host=bind_host,
        bootstrap_port=bootstrap_port,
        broker_port_base=base,
        node_id_min=low,
        node_id_max=high,
        advertised_host=bind_host if advertised_host is None else advertised_host,
        advertised_port_base=base if advertised_base is None else advertised_base,
        tls=tls,
        proxy_protocol=proxy_protocol,
    )


PORT_ROUTING = Conv("a mapping with bootstrap_port and broker_port_base", _port_routing)

_SNI_ROUTING_KEYS = ("listener", "bootstrap_host", "broker_host_pattern", "advertised_port")


def sni_routing_conv(listeners: Mapping[str, Listener], some_broken: bool) -> Conv[SniRouting]:
    """``sni_routing``, given the listeners that were read. When some listener could not be read,
    a name not found is not reported: that listener's own errors come first."""

    def parse(value: object, at: At) -> SniRouting:
        s = Section(value, at, _SNI_ROUTING_KEYS)
        listener_name = s.get("listener", NAME)
        bootstrap_host = s.get("bootstrap_host", SNI_NAME)
        pattern = s.get("broker_host_pattern", SNI_PATTERN)
        advertised_port = s.get("advertised_port", nullable(PORT), None)
        listener = listeners.get(listener_name) if valid(listener_name) else None
        if valid(listener_name) and listener is None:
            if some_broken:
                s.failed = True
            else:
                known = ", ".join(f'"{name}"' for name in listeners) or "none"
                s.fail("listener", f'expected the name of a listener (defined: {known}), '
                       f'got "{listener_name}"{did_you_mean(listener_name, [*listeners])}')
        if valid(bootstrap_host, pattern) and names_overlap(pattern, bootstrap_host):
            s.fail("broker_host_pattern", f'expected a pattern that cannot produce bootstrap_host '
                   f'"{bootstrap_host}", got "{pattern}"')
        s.finish()
        assert listener is not None
        return SniRouting(
            listener=listener_name,
            bootstrap_host=bootstrap_host,
            broker_host_pattern=pattern,
            advertised_port=listener.bind_address.port if advertised_port is None
            else advertised_port,
        )

    return Conv("a mapping with listener, bootstrap_host and broker_host_pattern", parse)


# -- clusters --------------------------------------------------------------------------------------

_CLUSTER_KEYS = ("name", "upstream", "aws_region", "port_routing", "sni_routing")


def cluster_conv(sni_routing: Conv[SniRouting]) -> Conv[ClusterConfig]:
    """A ``clusters`` entry, its ``sni_routing`` read by ``sni_routing`` (see
    :func:`sni_routing_conv`)."""

    def parse(value: object, at: At) -> ClusterConfig:
        s = Section(value, at, _CLUSTER_KEYS)
        name = s.get("name", NAME)
        upstream = s.get("upstream", UPSTREAM)
        aws_region = s.get("aws_region", nullable(AWS_REGION), None)
        given = [key for key in ("port_routing", "sni_routing") if s.has(key)]
        if len(given) != 1:
            s.fail(None, "expected exactly one of port_routing, sni_routing, got "
                   + ("both" if given else "neither"))
        port = s.get("port_routing", PORT_ROUTING) if s.has("port_routing") else None
        sni = s.get("sni_routing", sni_routing) if s.has("sni_routing") else None
        if valid(upstream, port, sni):
            _check_numbering(s, upstream, port, sni)
        s.finish()
        return ClusterConfig(
            name=name, upstream=upstream, aws_region=aws_region, port_routing=port, sni_routing=sni
        )

    return Conv("a mapping with name, upstream and port_routing or sni_routing", parse)


def _check_numbering(s: Section, upstream: Upstream, port: PortRouting | None,
                     sni: SniRouting | None) -> None:
    """The upstream and the edge number brokers alike: by node id ({node}), or by the number in
    the brokers' upstream names ({n}, with upstream.broker_name_pattern)."""
    by_name = upstream.broker_name_pattern is not None
    if by_name and port is not None:
        s.fail("port_routing", "expected sni_routing with upstream.broker_name_pattern "
               "(port_routing serves brokers by node id; map names with sni_routing)")
    if sni is None or by_name == (placeholder_of(sni.broker_host_pattern) == NUMBER):
        return
    where = s.at.key("sni_routing").key("broker_host_pattern")
    if by_name:
        where.error(f"expected a pattern with {NUMBER} (upstream.broker_name_pattern maps each "
                    f"upstream broker name to the edge name with the same number), got "
                    f'"{sni.broker_host_pattern}"')
    else:
        where.error(f"expected a pattern with {NODE}: {NUMBER} stands for the number in the "
                    "brokers' upstream names and needs upstream.broker_name_pattern, got "
                    f'"{sni.broker_host_pattern}"')
    s.failed = True


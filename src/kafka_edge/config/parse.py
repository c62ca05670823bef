"""Plain data (as ``yaml.safe_load`` returns it) -> a validated :class:`Config`.

Two passes. First each section is read on its own (types, ranges, required keys, files, secrets)
into model objects; a section with an error yields nothing, but its siblings are still read. Then
the cross-section rules (``_crosscheck.py``: unique names, names that refer to other entries, SNI
names shared by clusters on one listener, ports bound twice) run on everything that was read.
Every error is collected; if there is any, :class:`ConfigError` lists them all.

The defaults and the rules are documented key by key in docs/configuration.md.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from kafka_edge.config._crosscheck import check_cross_section
from kafka_edge.config._proxy_protocol import PROXY_PROTOCOL
from kafka_edge.config._reader import (
    BOOLEAN,
    FILE,
    SECRET_STRING,
    STRING,
    At,
    Context,
    Conv,
    Invalid,
    Section,
    choice,
    did_you_mean,
    integer,
    list_of,
    matching,
    nullable,
    seconds,
    text,
    valid,
)
from kafka_edge.config._tlscheck import (
    ca_problem,
    certificate_problem,
    ciphers_select_something,
    key_problem,
    pair_problem,
)
from kafka_edge.config.errors import ConfigError
from kafka_edge.config.model import (
    CertificatePair,
    ClusterConfig,
    Config,
    Discovery,
    Limits,
    Listener,
    LogFormat,
    LogLevel,
    Observability,
    PortRouting,
    Readiness,
    SaslCredentials,
    SaslMechanism,
    SniRouting,
    TlsServerConfig,
    TlsVersion,
    Upstream,
    UpstreamTls,
)
from kafka_edge.config.names import (
    MAX_NODE_ID,
    NODE,
    NUMBER,
    check_address_pattern,
    check_dns_name,
    check_host,
    check_host_pattern,
    is_wildcard,
    names_overlap,
    parse_allowed_host,
    parse_host_port,
    placeholder_of,
)
from kafka_edge.config.secret import Secret

DEFAULT_HTTP_BIND = "127.0.0.1:9180"
"""Outside 9092..9156, the ports of the common "bootstrap 9092, brokers 0..63 after it" layout."""

# -- scalar converters ---------------------------------------------------------------------------

NAME = matching(r"[a-z0-9-]+", "a name of lowercase letters, digits and hyphens")
PORT = integer(1, 65535)
NODE_ID = integer(0, MAX_NODE_ID)


def _host_port(value: str) -> str:
    parse_host_port(value)
    return value


HOST_PORT = text('"host:port"', _host_port)


def _bind_host(value: str) -> str:
    host = value[1:-1] if value.startswith("[") and value.endswith("]") else value
    try:
        return check_host(host)
    except ValueError:
        raise ValueError("expected a host name or IP address to bind") from None


def _advertised_host(value: str) -> str:
    host = value[1:-1] if value.startswith("[") and value.endswith("]") else value
    try:
        check_host(host)
    except ValueError:
        raise ValueError("expected a host name or IP address clients can connect to") from None
    if is_wildcard(host):
        raise ValueError("expected a host name or IP address clients can connect to (not a "
                         "wildcard address)")
    return host


BIND_HOST = text("a host name or IP address to bind", _bind_host)
ADVERTISED_HOST = text("a host name or IP address clients can connect to", _advertised_host)
SNI_NAME = text("a DNS name", check_dns_name)
SNI_PATTERN = text(f'a DNS name pattern with {NODE} (or {NUMBER}), such as '
                   f'"b-{NODE}.orders.example.com"', check_host_pattern)


def _address_pattern(value: str) -> str:
    check_address_pattern(value)
    return value


ADDRESS_PATTERN = text(f'a "host:port" pattern with {NODE} in the host', _address_pattern)


def _name_pattern(value: str) -> str:
    check_address_pattern(value, NUMBER)
    return value


NAME_PATTERN = text(f'a "host:port" pattern with {NUMBER} in the host, such as '
                    f'"b{NUMBER}-abc123.c1.kafka-serverless.us-east-1.amazonaws.com:9098"',
                    _name_pattern)
ENV_NAME = matching(r"[A-Za-z_][A-Za-z0-9_]*", "an environment variable name")
AWS_REGION = matching(r"[a-z]{2}(-[a-z]+)+-[0-9]+", 'an AWS region such as "us-east-1"')

_TLS_VERSIONS: dict[str, TlsVersion] = {"TLSv1.2": "TLSv1.2", "TLSv1.3": "TLSv1.3"}
_MECHANISMS: dict[str, SaslMechanism] = {
    "SCRAM-SHA-512": "SCRAM-SHA-512", "SCRAM-SHA-256": "SCRAM-SHA-256", "PLAIN": "PLAIN",
}
_LOG_LEVELS: dict[str, LogLevel] = {
    "debug": "debug", "info": "info", "warning": "warning", "error": "error",
}
_LOG_FORMATS: dict[str, LogFormat] = {"text": "text", "json": "json"}


def _ciphers(value: str) -> str:
    if not ciphers_select_something(value):
        raise ValueError("expected an OpenSSL cipher string that selects at least one cipher")
    return value


CIPHERS = text('an OpenSSL cipher string such as "ECDHE+AESGCM"', _ciphers)

# -- TLS -------------------------------------------------------------------------------------------


def _files_problems(
    s: Section, cert: Path | None, key: Path | None, *, cert_key: str, key_key: str
) -> None:
    """Check a certificate chain file and its key: each parses, and they belong together."""
    if s.at.ctx.names_only:
        return
    ok = True
    if cert is not None and (problem := certificate_problem(cert)):
        s.fail(cert_key, problem)
        ok = False
    if key is not None and (problem := key_problem(key)):
        s.fail(key_key, problem)
        ok = False
    if ok and cert is not None and key is not None and (problem := pair_problem(cert, key)):
        s.fail(key_key, problem)


def _certificate(value: object, at: At) -> CertificatePair:
    s = Section(value, at, ("cert_file", "key_file"))
    cert_file = s.get("cert_file", FILE)
    key_file = s.get("key_file", FILE)
    if s.at.ctx.names_only:
        pass
    elif valid(cert_file, key_file):
        _files_problems(s, cert_file, key_file, cert_key="cert_file", key_key="key_file")
    elif valid(cert_file) and (problem := certificate_problem(cert_file)):
        s.fail("cert_file", problem)
    elif valid(key_file) and (problem := key_problem(key_file)):
        s.fail("key_file", problem)
    s.finish()
    return CertificatePair(cert_file=cert_file, key_file=key_file)


CERTIFICATE = Conv("a mapping with cert_file and key_file", _certificate)

_SERVER_TLS_KEYS = ("certificates", "min_version", "ciphers", "handshake_timeout_s")


def _server_tls(value: object, at: At) -> TlsServerConfig:
    s = Section(value, at, _SERVER_TLS_KEYS)
    certificates = s.get("certificates", list_of(CERTIFICATE, non_empty=True))
    min_version = s.get("min_version", choice(_TLS_VERSIONS), "TLSv1.2")
    ciphers = s.get("ciphers", nullable(CIPHERS), None)
    handshake_timeout_s = s.get("handshake_timeout_s", seconds(allow_zero=False), 10.0)
    if valid(min_version, ciphers) and ciphers is not None and min_version == "TLSv1.3":
        s.fail("ciphers", 'expected null with min_version "TLSv1.3" (the cipher string only '
               "applies to TLS 1.2)")
    s.finish()
    return TlsServerConfig(
        certificates=certificates,
        min_version=min_version,
        ciphers=ciphers,
        handshake_timeout_s=handshake_timeout_s,
    )


SERVER_TLS = Conv("a mapping with certificates (TLS settings)", _server_tls)


def _upstream_tls(value: object, at: At) -> UpstreamTls:
    if value is True:
        raise Invalid('expected a mapping or null, got true (write "tls: {}" for TLS with the '
                      "defaults)")
    s = Section(value, at, ("ca_file", "verify_hostname", "cert_file", "key_file"))
    ca_file = s.get("ca_file", nullable(FILE), None)
    verify_hostname = s.get("verify_hostname", BOOLEAN, True)
    cert_file = s.get("cert_file", nullable(FILE), None)
    key_file = s.get("key_file", nullable(FILE), None)
    if (valid(ca_file) and ca_file is not None and not s.at.ctx.names_only
            and (problem := ca_problem(ca_file))):
        s.fail("ca_file", problem)
    if valid(cert_file, key_file):
        if cert_file is not None and key_file is None:
            s.fail("key_file", "required when cert_file is set (expected the client "
                   "certificate's private key file)")
        elif key_file is not None and cert_file is None:
            s.fail("cert_file", "required when key_file is set (expected the client "
                   "certificate file)")
        else:
            _files_problems(s, cert_file, key_file, cert_key="cert_file", key_key="key_file")
    s.finish()
    return UpstreamTls(
        ca_file=ca_file, verify_hostname=verify_hostname, cert_file=cert_file, key_file=key_file
    )


UPSTREAM_TLS = Conv("a mapping (TLS settings)", _upstream_tls)

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


def _sni_routing(listeners: Mapping[str, Listener], some_broken: bool) -> Conv[SniRouting]:
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


# -- clusters, limits, observability ---------------------------------------------------------------

_CLUSTER_KEYS = ("name", "upstream", "aws_region", "port_routing", "sni_routing")


def _cluster(sni_routing: Conv[SniRouting]) -> Conv[ClusterConfig]:
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


def _listener(value: object, at: At) -> Listener:
    s = Section(value, at, ("name", "bind", "tls", "default_cluster", "proxy_protocol"))
    name = s.get("name", NAME)
    bind = s.get("bind", HOST_PORT)
    tls = s.get("tls", SERVER_TLS)
    default_cluster = s.get("default_cluster", nullable(NAME), None)
    proxy_protocol = s.get("proxy_protocol", PROXY_PROTOCOL, None)
    s.finish()
    return Listener(
        name=name, bind=bind, tls=tls, default_cluster=default_cluster,
        proxy_protocol=proxy_protocol,
    )


LISTENER = Conv("a mapping with name, bind and tls", _listener)


def _limits(value: object, at: At) -> Limits:
    keys = ("max_frame_bytes", "max_connections", "idle_timeout_s", "drain_timeout_s",
            "incomplete_frame_timeout_s", "first_request_timeout_s", "max_in_flight_requests")
    s = Section(value, at, keys, null_is_empty=True)
    max_frame_bytes = s.get("max_frame_bytes", integer(1, 2**31 - 1), 104_857_600)
    max_connections = s.get("max_connections", integer(1), 10_000)
    idle_timeout_s = s.get("idle_timeout_s", seconds(allow_zero=True), 0.0)
    drain_timeout_s = s.get("drain_timeout_s", seconds(allow_zero=True), 30.0)
    incomplete = s.get("incomplete_frame_timeout_s", seconds(allow_zero=True), 30.0)
    first_request = s.get("first_request_timeout_s", seconds(allow_zero=True), 30.0)
    max_in_flight = s.get("max_in_flight_requests", integer(1, 1 << 20), 1000)
    s.finish()
    return Limits(
        max_frame_bytes=max_frame_bytes,
        max_connections=max_connections,
        idle_timeout_s=idle_timeout_s,
        drain_timeout_s=drain_timeout_s,
        incomplete_frame_timeout_s=incomplete,
        first_request_timeout_s=first_request,
        max_in_flight_requests=max_in_flight,
    )


def _observability(value: object, at: At) -> Observability:
    s = Section(value, at, ("http_bind", "log_level", "log_format", "readiness"),
                null_is_empty=True)
    http_bind = s.get("http_bind", nullable(HOST_PORT), DEFAULT_HTTP_BIND)
    log_level = s.get("log_level", choice(_LOG_LEVELS), "info")
    log_format = s.get("log_format", choice(_LOG_FORMATS), "text")
    readiness = s.section("readiness", READINESS)
    s.finish()
    return Observability(http_bind=http_bind, log_level=log_level, log_format=log_format,
                         readiness=readiness)


def _readiness(value: object, at: At) -> Readiness:
    s = Section(value, at, ("probe_interval_s", "window_s", "require_clusters"),
                null_is_empty=True)
    interval = s.get("probe_interval_s", seconds(allow_zero=False), 5.0)
    window = s.get("window_s", seconds(allow_zero=False), 30.0)
    require = s.get("require_clusters", BOOLEAN, True)
    if window < interval:
        s.fail("window_s", f"expected at least probe_interval_s ({interval:g}), got {window:g}: "
                           "a cluster would be unreachable between two successful probes")
    s.finish()
    return Readiness(probe_interval_s=interval, window_s=window, require_clusters=require)


READINESS = Conv("a mapping with probe_interval_s, window_s and require_clusters", _readiness)


LIMITS = Conv("a mapping of limits", _limits)
OBSERVABILITY = Conv("a mapping with http_bind, log_level and log_format", _observability)

# -- the whole file --------------------------------------------------------------------------------

_TOP_KEYS = ("listeners", "clusters", "limits", "observability")


def parse_config(
    data: object, *, base_dir: Path | None = None, env: Mapping[str, str] | None = None,
    names_only: bool = False,
) -> Config:
    """Validate ``data`` (what ``yaml.safe_load`` returned) into a :class:`Config`.

    Relative file paths are resolved against ``base_dir`` (default: the current folder);
    ``password_env`` names are looked up in ``env`` (default: ``os.environ``, read now).
    ``names_only``: check everything but the files and secrets, which are neither opened nor
    read (the model then holds the paths and empty passwords): for commands such as
    ``kafka-edge dns`` that need names alone. Raises :class:`ConfigError` listing every problem.
    """
    ctx = Context(base_dir=(base_dir or Path.cwd()).absolute(),
                  env=os.environ if env is None else env, names_only=names_only)
    at = At(ctx)
    try:
        s = Section(data, at, _TOP_KEYS)
    except Invalid as exc:
        raise ConfigError([f"top level: {exc}"]) from None

    listeners = s.items("listeners", LISTENER, required=False)
    listeners_by_name: dict[str, Listener] = {}
    for _, listener in listeners:
        listeners_by_name.setdefault(listener.name, listener)
    some_listener_broken = _some_broken(s.data.get("listeners"), listeners, required=False)

    clusters = s.items("clusters", _cluster(_sni_routing(listeners_by_name, some_listener_broken)),
                       required=True)
    some_cluster_broken = _some_broken(s.data.get("clusters"), clusters, required=True)
    limits = s.section("limits", LIMITS)
    observability = s.section("observability", OBSERVABILITY)

    check_cross_section(at, listeners, clusters, observability,
                        some_cluster_broken=some_cluster_broken)

    if ctx.errors:
        raise ConfigError(ctx.errors)
    return Config(
        listeners=tuple(listener for _, listener in listeners),
        clusters=tuple(cluster for _, cluster in clusters),
        limits=limits,
        observability=observability,
    )


def _some_broken(raw: object, read: Sequence[object], *, required: bool) -> bool:
    """Did some entry of a list fail to read (so a name not found may well be in it)?"""
    if raw is None or raw == []:
        return required
    return not isinstance(raw, list) or len(read) < len(raw)

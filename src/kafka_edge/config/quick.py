"""The no-file mode: ``kafka-edge run --upstream HOST:PORT --listen HOST:PORT [--advertise HOST]``.

One plaintext cluster named ``default`` in port-per-broker mode: the bootstrap on the listen port,
broker node N (0..63) on listen port + 1 + N, advertised as ``--advertise`` or the listen host.
Errors name the flag at fault; the configuration itself goes through :func:`parse_config` like a
file would.
"""

from __future__ import annotations

from kafka_edge.config.errors import ConfigError
from kafka_edge.config.model import Config
from kafka_edge.config.names import HostPort, check_host, is_wildcard, parse_host_port
from kafka_edge.config.parse import DEFAULT_HTTP_BIND, parse_config

QUICK_NODE_IDS = range(64)
"""Node ids served in quick mode."""


def quick_config(
    *,
    upstream: str,
    listen: str,
    advertise: str | None = None,
    http_bind: str | None = DEFAULT_HTTP_BIND,
) -> Config:
    """The configuration of quick mode. ``upstream`` may list several bootstrap servers,
    comma-separated. ``http_bind`` is the health/metrics endpoint (None disables it)."""
    errors: list[str] = []
    servers = [server.strip() for server in upstream.split(",")]
    for server in servers:
        try:
            parse_host_port(server)
        except ValueError as exc:
            errors.append(f'--upstream: {exc}, got "{server}"')

    advertised: str | None = None
    if advertise is not None:
        host = advertise.removeprefix("[").removesuffix("]")
        try:
            advertised = check_host(host)
        except ValueError:
            errors.append(f'--advertise: expected a host name or IP address (no port), '
                          f'got "{advertise}"')
        else:
            if is_wildcard(advertised):
                errors.append(f'--advertise: expected the host name or IP address clients use '
                              f'to reach this machine, got the wildcard "{advertise}"')

    bind: HostPort | None = None
    try:
        bind = parse_host_port(listen)
    except ValueError as exc:
        errors.append(f'--listen: {exc}, got "{listen}"')
    if bind is not None:
        if is_wildcard(bind.host) and advertise is None:
            errors.append(
                f'--listen: "{listen}" accepts connections on every address of this machine, '
                "which is not an address clients can connect to: add --advertise HOST with the "
                "host name or IP address clients use to reach it")
        last = bind.port + len(QUICK_NODE_IDS)
        if last > 65535:
            errors.append(
                f"--listen: expected a port of at most {65535 - len(QUICK_NODE_IDS)}, got "
                f"{bind.port} (brokers {QUICK_NODE_IDS[0]}..{QUICK_NODE_IDS[-1]} are served on "
                f"the {len(QUICK_NODE_IDS)} ports after it)")
    if errors:
        raise ConfigError(errors)
    assert bind is not None
    data = {
        "clusters": [{
            "name": "default",
            "upstream": {"bootstrap_servers": servers},
            "port_routing": {
                "bind_host": bind.host,
                "bootstrap_port": bind.port,
                "broker_port_base": bind.port + 1,
                "node_id_min": QUICK_NODE_IDS[0],
                "node_id_max": QUICK_NODE_IDS[-1],
                "advertised_host": advertised or bind.host,
            },
        }],
        "observability": {"http_bind": http_bind},
    }
    return parse_config(data, env={})

"""The open-file limit at start-up (relay/open_files.py): the soft limit wanted, the descriptors
a configuration may use, and the warning when the limit is below that. (That a real process
raises its limit and logs it: tests/e2e/test_limits.py.)"""

from __future__ import annotations

import resource
from typing import Any

from kafka_edge.config import Config, parse_config
from kafka_edge.relay.open_files import (
    OWN_DESCRIPTORS,
    accepting_listeners,
    descriptors_needed,
    too_low,
    wanted_soft_limit,
)

INFINITY = resource.RLIM_INFINITY


def _port_cluster(name: str, base: int, nodes: tuple[int, int]) -> dict[str, Any]:
    return {"name": name, "upstream": {"bootstrap_servers": [f"{name}.internal:9092"]},
            "port_routing": {"bind_host": "0.0.0.0", "bootstrap_port": base,
                             "broker_port_base": base + 1, "node_id_min": nodes[0],
                             "node_id_max": nodes[1], "advertised_host": "edge.example.com"}}


def _config(max_connections: int) -> Config:
    """One SNI listener (two clusters on it), and two port-routed clusters: 3 + 8 brokers."""
    sni = [{"name": name, "upstream": {"bootstrap_servers": [f"{name}.internal:9092"]},
            "sni_routing": {"listener": "edge", "bootstrap_host": f"boot.{name}.example.com",
                            "broker_host_pattern": f"b-{{node}}.{name}.example.com"}}
           for name in ("orders", "payments")]
    return parse_config({
        "listeners": [{"name": "edge", "bind": "0.0.0.0:9094", "tls": {
            "certificates": [{"cert_file": "c.pem", "key_file": "c.key"}]}}],
        "clusters": [*sni, _port_cluster("small", 19092, (1, 3)),
                     _port_cluster("big", 29092, (0, 7))],
        "limits": {"max_connections": max_connections},
    }, names_only=True)


def test_the_soft_limit_wanted_is_the_hard_limit() -> None:
    assert wanted_soft_limit(1024, 524288) == 524288
    assert wanted_soft_limit(20000, 20000) == 20000
    # never lowered; an unlimited hard limit is no number to set (kernels refuse it)
    assert wanted_soft_limit(4096, 1024) == 4096
    assert wanted_soft_limit(1024, INFINITY) == 1024
    assert wanted_soft_limit(INFINITY, INFINITY) == INFINITY


def test_descriptors_counted_per_accepting_listener() -> None:
    config = _config(1000)
    # the SNI listener once (whatever the clusters on it), each port-routed cluster once
    assert accepting_listeners(config) == 3
    listening = 1 + (1 + 3) + (1 + 8)  # the SNI port; each bootstrap port and broker port
    assert descriptors_needed(config) == 2 * 1000 * 3 + listening + OWN_DESCRIPTORS == 6114


def test_a_limit_below_the_need_is_named_with_the_keys_to_change() -> None:
    config = _config(1000)
    assert too_low(6114, config) is None
    assert too_low(1 << 20, config) is None
    assert too_low(INFINITY, config) is None
    warning = too_low(6113, config)
    assert warning is not None
    for part in ("open files limit (RLIMIT_NOFILE) 6113", "the 6114 descriptors",
                 "limits.max_connections 1000 x 3 listener(s)", "plus 114 for listening",
                 "LimitNOFILE=", "ulimit -n", "lower limits.max_connections"):
        assert part in warning, (part, warning)


def test_the_default_max_connections_needs_more_than_a_common_soft_limit() -> None:
    config = parse_config({"clusters": [_port_cluster("one", 19092, (1, 3))]}, names_only=True)
    assert config.limits.max_connections == 10_000
    assert descriptors_needed(config) == 2 * 10_000 + 4 + OWN_DESCRIPTORS
    assert too_low(1024, config) is not None
    assert too_low(65536, config) is None

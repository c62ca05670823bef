"""What a cluster without discovery credentials or address pattern is told: by `kafka-edge
check` (config alone), and by the relay's log line when discovery fails (pure; the live side is
in tests/e2e/test_doctor.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import yaml

from kafka_edge.cli import main
from kafka_edge.config import Config, parse_config
from kafka_edge.config.advice import DISCOVERY_FIX, config_warnings, discovery_unassisted
from kafka_edge.relay.cluster import discovery_failure


def _cluster(name: str, **upstream: Any) -> dict[str, Any]:
    return {"name": name, "upstream": {"bootstrap_servers": ["10.0.0.1:9096"], **upstream},
            "port_routing": {"bind_host": "127.0.0.1", "bootstrap_port": 19092 + 100 * len(name),
                             "broker_port_base": 19093 + 100 * len(name)}}


def _config(*clusters: dict[str, Any]) -> Config:
    return parse_config({"clusters": list(clusters)}, env={"PW": "secret"})


SASL = {"discovery": {"sasl": {"mechanism": "SCRAM-SHA-512", "username": "edge",
                               "password_env": "PW"}}}
PATTERN = {"broker_address_pattern": "b-{node}.k.example:9096"}


def test_only_a_cluster_with_neither_credentials_nor_pattern_is_warned_about() -> None:
    config = _config(_cluster("a"), _cluster("bb", **SASL), _cluster("ccc", **PATTERN))
    assert [discovery_unassisted(c) for c in config.clusters] == [True, False, False]
    [warning] = config_warnings(config)
    assert warning.startswith('clusters[0] ("a"): none of upstream.discovery.sasl, '
                              "upstream.broker_address_pattern and "
                              "upstream.broker_name_pattern is set")
    assert "refuses a client's first connection" in warning and DISCOVERY_FIX in warning


def test_check_prints_the_warning_and_still_accepts(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "k.yaml"
    path.write_text(yaml.safe_dump({"clusters": [_cluster("a"), _cluster("bb", **PATTERN)]}))
    assert main(["check", "--config", str(path)]) == 0
    out, err = capsys.readouterr()
    assert "configuration OK: 2 cluster(s)" in out
    assert err.count("warning: ") == 1 and 'clusters[0] ("a")' in err


@pytest.mark.parametrize(("extra", "hinted"), [({}, True), (SASL, False), (PATTERN, False)])
def test_the_relay_log_line_says_what_is_missing(extra: dict[str, Any], hinted: bool) -> None:
    cluster = _config(_cluster("a", **extra)).clusters[0]
    closed = discovery_failure(asyncio.IncompleteReadError(b"", 4), cluster)
    assert closed.startswith("the cluster closed the connection without answering")
    assert (DISCOVERY_FIX in closed) is hinted
    assert ("no discovery credentials" in closed) is hinted
    assert discovery_failure(ConnectionRefusedError(111, "Connection refused"), cluster) \
        == "[Errno 111] Connection refused"
    assert discovery_failure(TimeoutError(), cluster) \
        == "no answer within upstream.connect_timeout_s (10.0 s)"

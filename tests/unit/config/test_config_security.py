"""The security settings: upstream.allowed_hosts and the protective limits."""

from __future__ import annotations

from typing import Any


def _config(upstream_extra: dict[str, Any] | None = None,
            limits: dict[str, Any] | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "clusters": [{
            "name": "c",
            "upstream": {"bootstrap_servers": ["10.0.1.15:9092"], **(upstream_extra or {})},
            "port_routing": {"bind_host": "10.0.0.7", "bootstrap_port": 9092,
                             "broker_port_base": 9093},
        }],
    }
    if limits is not None:
        data["limits"] = limits
    return data


def test_allowed_hosts_parse(harness) -> None:
    config = harness.parse(_config({"allowed_hosts": ["10.0.0.0/16", "*.kafka.internal",
                                                      "b-1.example"]}))
    assert config.clusters[0].upstream.allowed_hosts == ("10.0.0.0/16", "*.kafka.internal",
                                                         "b-1.example")
    assert harness.parse(_config()).clusters[0].upstream.allowed_hosts is None


def test_bad_allowed_hosts_name_the_key_path(harness) -> None:
    errors = harness.errors(_config({"allowed_hosts": ["10.0.0.0/16", "10.0.0.1/8", "a.*.b"]}))
    text = "\n".join(errors)
    assert "clusters[0].upstream.allowed_hosts[1]" in text and "IP network" in text
    assert "clusters[0].upstream.allowed_hosts[2]" in text
    assert "allowed_hosts[0]" not in text
    assert harness.errors(_config({"allowed_hosts": []}))  # an empty list allows nothing: refused


def test_protective_limits(harness) -> None:
    limits = harness.parse(_config(limits={"incomplete_frame_timeout_s": 5,
                                           "first_request_timeout_s": 0})).limits
    assert (limits.incomplete_frame_timeout_s, limits.first_request_timeout_s) == (5.0, 0.0)
    errors = harness.errors(_config(limits={"incomplete_frame_timeout_s": -1}))
    assert any("limits.incomplete_frame_timeout_s" in e for e in errors)

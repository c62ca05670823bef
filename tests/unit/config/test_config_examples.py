"""The shipped examples and the complete example in docs/configuration.md validate.

The YAML text is loaded unchanged. Files an example refers to (certificates, keys, CA bundles)
are generated at the same relative paths next to a copy of it, and every ``password_env`` it
names is set, so what is checked is exactly what a user gets.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme
import yaml

from kafka_edge.config import Config, load_config
from kafka_edge.routing.routes import Routes, Target

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = ROOT / "examples"
DOCS = ROOT / "docs" / "configuration.md"


def _mappings(node: object) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _mappings(value)
    elif isinstance(node, list):
        for value in node:
            yield from _mappings(value)


def load_with_generated_files(source: Path, folder: Path) -> Config:
    """Copy ``source`` into ``folder``, make the files and variables it refers to, load it."""
    copy = folder / source.name
    shutil.copyfile(source, copy)
    data = yaml.safe_load(source.read_text())
    ca = trustme.CA()
    env = {}
    for mapping in _mappings(data):
        if isinstance(mapping.get("cert_file"), str):
            cert = ca.issue_cert("edge.example.com")
            _write(folder, mapping["cert_file"],
                   b"".join(blob.bytes() for blob in cert.cert_chain_pems))
            _write(folder, mapping["key_file"], cert.private_key_pem.bytes())
        if isinstance(mapping.get("ca_file"), str):
            _write(folder, mapping["ca_file"], ca.cert_pem.bytes())
        if isinstance(mapping.get("password_env"), str):
            env[mapping["password_env"]] = "example-password"
    return load_config(copy, env=env)


def _write(folder: Path, relative: str, content: bytes) -> None:
    path = folder / relative
    assert not Path(relative).is_absolute(), "examples use paths relative to the file"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)


def test_every_example_is_tested() -> None:
    assert sorted(p.name for p in EXAMPLES.glob("*.yaml")) == [
        "msk.yaml", "port-per-broker.yaml", "sni-two-clusters.yaml"]


def test_port_per_broker_loads_as_it_is() -> None:
    config = load_config(EXAMPLES / "port-per-broker.yaml")  # refers to no files
    (cluster,) = config.clusters
    assert cluster.upstream.bootstrap_addresses == (("127.0.0.1", 9092),)
    assert cluster.upstream.tls is None
    pr = cluster.port_routing
    assert pr is not None
    assert (pr.bind_host, pr.bootstrap_port) == ("127.0.0.1", 19092)
    assert pr.advertised_address_for_node(2) == ("127.0.0.1", 19095)


def test_sni_two_clusters(tmp_path: Path) -> None:
    config = load_with_generated_files(EXAMPLES / "sni-two-clusters.yaml", tmp_path)
    (listener,) = config.listeners
    assert len(listener.tls.certificates) == 2
    orders, payments = config.clusters
    assert orders.sni_routing is not None and payments.sni_routing is not None
    assert orders.sni_routing.listener == payments.sni_routing.listener == "edge"
    assert orders.advertised_address_for_node(2) == ("b-2.orders.example.com", 9098)
    assert orders.upstream.discovery.sasl is not None
    assert orders.upstream.discovery.sasl.password.reveal() == "example-password"
    assert payments.upstream.pattern_address(0) == ("kafka-0.payments.internal", 9094)
    assert payments.upstream.tls is not None
    assert payments.upstream.tls.cert_file == tmp_path / "certs/edge-client.pem"


def test_msk(tmp_path: Path) -> None:
    config = load_with_generated_files(EXAMPLES / "msk.yaml", tmp_path)
    cluster, serverless = config.clusters
    assert cluster.aws_region == "us-east-1"
    assert cluster.upstream.pattern_address(2) == (
        "b-2.orders.abc123.c2.kafka.us-east-1.amazonaws.com", 9098)
    assert cluster.upstream.tls is not None
    assert cluster.upstream.tls.ca_file is None
    assert cluster.upstream.discovery.sasl is None
    assert cluster.sni_routing is not None
    assert Routes(config).by_server_name(cluster.sni_routing.listener,
                                         "b-2.orders.example.com") == Target(cluster.name, 2)
    # MSK Serverless: names map to names, by the number in them
    routes = Routes(config)
    assert routes.edge_address_for_host(
        "events", "b97-x7y8z9ab.c1.kafka-serverless.us-east-1.amazonaws.com") == (
        "b-97.events.example.com", 9098)
    assert routes.by_server_name("edge", "b-97.events.example.com") == Target("events", 97)
    assert routes.upstream_by_name("events", 97) == (
        "b97-x7y8z9ab.c1.kafka-serverless.us-east-1.amazonaws.com", 9098)
    assert serverless.upstream.discovery.sasl is None


def _documented_configurations() -> list[str]:
    """The ```yaml blocks of docs/configuration.md that are whole files (first line
    ``# kafka-edge.yaml``)."""
    blocks = re.findall(r"```yaml\n(.*?)```", DOCS.read_text(), flags=re.DOTALL)
    return [block for block in blocks if block.startswith("# kafka-edge.yaml")]


@pytest.mark.parametrize("index", range(len(_documented_configurations())))
def test_the_documented_configurations_validate(tmp_path: Path, index: int) -> None:
    source = tmp_path / "source" / "kafka-edge.yaml"
    source.parent.mkdir()
    source.write_text(_documented_configurations()[index])
    load_with_generated_files(source, tmp_path)


def test_the_documentation_has_a_complete_example() -> None:
    assert _documented_configurations()

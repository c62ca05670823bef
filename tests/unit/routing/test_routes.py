"""The routing module: every decision the relay asks for, against a full configuration; and the
pure modules (routing/, protocol/, tls/clienthello.py) import nothing that does I/O."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import trustme
import yaml

from kafka_edge.config import parse_config
from kafka_edge.routing.routes import Routes, Target

CONFIG = """
listeners:
  - {name: edge, bind: "0.0.0.0:9098", tls: {certificates: [{cert_file: c.pem, key_file: c.key}]}}
clusters:
  - name: orders
    upstream: {bootstrap_servers: ["b-1.orders.internal:9096"],
               broker_address_pattern: "b-{node}.orders.internal:9096"}
    sni_routing: {listener: edge, bootstrap_host: Boot.Orders.Example.com,
                  broker_host_pattern: "b-{node}.orders.example.com"}
  - name: payments
    upstream: {bootstrap_servers: ["10.0.0.1:9092"]}
    sni_routing: {listener: edge, bootstrap_host: boot.payments.example.com,
                  broker_host_pattern: "broker{node}.payments.example.com", advertised_port: 443}
  - name: local
    upstream: {bootstrap_servers: ["127.0.0.1:9092"]}
    port_routing: {bind_host: "0.0.0.0", bootstrap_port: 19092, broker_port_base: 19093,
                   node_id_min: 1, node_id_max: 3, advertised_host: edge.example.com,
                   advertised_port_base: 29093}
"""


@pytest.fixture
def routes(tmp_path: Path) -> Routes:
    cert = trustme.CA().issue_cert("*.orders.example.com")
    cert.private_key_pem.write_to_path(str(tmp_path / "c.key"))
    cert.cert_chain_pems[0].write_to_path(str(tmp_path / "c.pem"))
    return Routes(parse_config(yaml.safe_load(CONFIG), base_dir=tmp_path, env={}))


def test_server_names(routes: Routes) -> None:
    assert routes.by_server_name("edge", "boot.orders.example.com.") == Target("orders", None)
    assert routes.by_server_name("edge", "B-12.Orders.Example.COM") == Target("orders", 12)
    assert routes.by_server_name("edge", "broker0.payments.example.com") == Target("payments", 0)
    assert routes.by_server_name("other", "b-1.orders.example.com") is None
    for name in ("b-1.payments.example.com", "boot.orders.example.com..", "b-01.orders.example.com",
                 "b-1.orders.example.com.evil", "x.b-1.orders.example.com", "",
                 "b-" + "7" * 4300 + ".orders.example.com", "b-\u00e4.orders.example.com"):
        assert routes.by_server_name("edge", name) is None, name


def test_port_targets(routes: Routes) -> None:
    assert routes.port_targets("local") == [
        (19092, Target("local", None)), (19093, Target("local", 1)), (19094, Target("local", 2)),
        (19095, Target("local", 3))]
    assert routes.port_targets("orders") == []


def test_edge_addresses(routes: Routes) -> None:
    assert routes.edge_address("orders", 4) == ("b-4.orders.example.com", 9098)
    assert routes.edge_address("payments", 4) == ("broker4.payments.example.com", 443)
    assert routes.edge_address("local", 2) == ("edge.example.com", 29094)
    assert routes.edge_address("local", 4) is None  # outside the range: never the real one
    assert routes.edge_address("orders", -1) is None


def test_upstream_by_pattern(routes: Routes) -> None:
    assert routes.upstream_by_pattern("orders", 3) == ("b-3.orders.internal", 9096)
    assert routes.upstream_by_pattern("payments", 3) is None
    assert routes.upstream_by_pattern("orders", -1) is None


SRC = Path(__file__).resolve().parents[3] / "src" / "kafka_edge"
PURE = [*sorted((SRC / "routing").glob("*.py")), *sorted((SRC / "protocol").glob("*.py")),
        SRC / "tls" / "clienthello.py"]
FORBIDDEN = {"asyncio", "socket", "ssl", "selectors", "uvloop"}


@pytest.mark.parametrize("path", PURE, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_pure_modules_do_no_io(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        else:
            continue
        for name in names:
            assert name.split(".")[0] not in FORBIDDEN, f"{path.name} imports {name}"

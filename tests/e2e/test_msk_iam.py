"""Amazon MSK through kafka-edge, emulated: MSK IAM with AWS's own client libraries, under a
custom domain, across networks. testbed.msk says what is emulated and how; tests/e2e/msk_world.py
draws the topology (two emulated MSK clusters, two kafka-edge instances behind HAProxy that sends
bootstrap names to one and broker names to the other, dnsmasq in the client network, a second
client network)."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from testbed import msk
from testbed.clients import ClientError, ClientJob, ClientSecurity, consume_job, produce_job
from testbed.gobuild import GoMissing, build

from .msk_world import (
    NUMBERS,
    ORDERS,
    ORDERS_BOOT,
    ORDERS_REGION,
    PAYMENTS,
    PAYMENTS_BOOT,
    PAYMENTS_REGION,
    World,
    msk_world,
    txt_records,
    unavailable_reason,
)
from .sni_front import LB_PORT

pytestmark = [pytest.mark.e2e, pytest.mark.netns]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
    with msk_world(tmp_path_factory.mktemp("msk")) as built:
        yield built


def _records(n: int, tag: str) -> list[tuple[str, str]]:
    return [(f"k-{tag}-{i}", f"v-{tag}-{i}") for i in range(n)]


def _topic(world: World, tag: str, partitions: int = 3, cluster: str = "orders") -> str:
    topic = f"msk-{tag}-{uuid.uuid4().hex[:6]}"
    target = world.orders if cluster == "orders" else world.payments
    target.kafka.create_topic(topic, partitions=partitions,
                              replication_factor=len(target.names))
    return topic


def test_dns_serves_what_kafka_edge_dns_prints(world: World) -> None:
    assert txt_records(world.dns_records) == {ORDERS["region_txt"]: ORDERS_REGION,
                                               PAYMENTS["region_txt"]: PAYMENTS_REGION}
    out = world.topo.run("client", [sys.executable, "-c",
                                    "import socket; print(socket.gethostbyname("
                                    "'b-305.orders.example.com'))"], timeout=30)
    assert out.stdout.decode().strip() == world.topo.edge_client_ip


# -- AWS's client libraries, producing and consuming in a group through the edge ----------------


@pytest.mark.parametrize(("mechanism", "region_from"), [
    ("AWS_MSK_IAM", "AWS_REGION"),
    ("AWS_MSK_IAM", "Route53RegionProvider"),
    ("OAUTHBEARER", "AWS_REGION"),
    ("OAUTHBEARER", "Route53RegionProvider"),
])
def test_java_aws_msk_iam_auth(mechanism: str, region_from: str, world: World) -> None:
    topic = _topic(world, f"java-{mechanism.lower()[:5]}")
    by_dns = region_from == "Route53RegionProvider"
    props = msk.java_iam_props(mechanism,  # type: ignore[arg-type]
                               region_txt=ORDERS["region_txt"] if by_dns else None)
    before = world.dns.queries().count(ORDERS["region_txt"])
    sizes = _log_sizes(world)
    job = ClientJob(client="java", bootstrap=ORDERS_BOOT, topic=topic, netns=world.topo.client,
                    security=ClientSecurity(protocol="SSL", ca_file=world.ca), extra=props,
                    env=msk.aws_env(region=None if by_dns else ORDERS_REGION),
                    classpath=msk.iam_client_jars(), timeout=90)
    sent = [(k.encode(), v.encode()) for k, v in _records(200, "java")]
    produce_job(dataclasses.replace(job, records=sent))
    got = consume_job(dataclasses.replace(job, count=len(sent), group=f"g-{topic}"))
    assert sorted(got) == sorted(sent)
    if by_dns:  # the region came from the TXT record (the environment has none)
        assert world.dns.queries().count(ORDERS["region_txt"]) > before
    if mechanism == "AWS_MSK_IAM":  # the payload signs the name the client dialled: the edge's
        logs = _broker_logs_since(sizes)
        for name in (ORDERS["boot"], *(f"b-{n}.orders.example.com" for n in NUMBERS.values())):
            assert f"(signed for host {name})" in logs, name


def test_python_signer_with_confluent_kafka(world: World) -> None:
    topic = _topic(world, "python")
    sent = _records(300, "py")
    run = world.python("produce", topic=topic, records=sent)
    assert run.code == 0, (run.result, run.stderr)
    assert len(run.result["partitions"]) == 3  # all three brokers lead one
    run = world.python("consume", topic=topic, count=len(sent), group=f"g-{topic}")
    assert run.code == 0, (run.result, run.stderr)
    assert sorted(run.records) == sorted(sent)


def test_go_franz_go_aws_msk_iam(world: World) -> None:
    try:
        binary = build("franz_msk_iam")
    except GoMissing as exc:
        pytest.skip(str(exc))
    topic = _topic(world, "go")
    run = msk.go_client(binary, bootstrap=ORDERS_BOOT, ca=world.ca, topic=topic, count=150,
                        group=f"g-{topic}", netns=world.topo.client,
                        env=msk.aws_env(region=ORDERS_REGION))  # no region in the custom name
    assert run.code == 0, run.stderr
    assert run.result["consumed"] == 150 and len(run.result["partitions"]) == 3
    # the region the client signs for is its own business; the cluster's is us-east-1
    run = msk.go_client(binary, bootstrap=ORDERS_BOOT, ca=world.ca, topic=topic, count=1,
                        group=f"g-{topic}", netns=world.topo.client, timeout=8,
                        env=msk.aws_env(region=PAYMENTS_REGION))
    assert run.code == 2, run.stderr
    assert (f"Access denied: signed for region {PAYMENTS_REGION}, but this cluster is in "
            f"{ORDERS_REGION}") in run.stderr, run.stderr


# -- refusals: the emulated broker says no, and the client hears it through the edge -------------


def _log_sizes(world: World) -> dict[Path, int]:
    return {p: p.stat().st_size for p in world.orders.kafka.log_files().values()}


def _broker_logs_since(sizes: dict[Path, int]) -> str:
    """What the brokers logged since ``sizes`` were taken."""
    text = []
    for path, size in sizes.items():
        with path.open("rb") as f:
            f.seek(size)
            text.append(f.read().decode(errors="replace"))
    return "".join(text)


def test_wrong_credentials_and_a_wrong_region_are_refused(world: World) -> None:
    topic = _topic(world, "refused", partitions=1)
    sizes = _log_sizes(world)
    wrong_secret = world.python("produce", topic=topic, records=_records(1, "x"), timeout=30,
                                env=msk.aws_env(region=ORDERS_REGION, secret="not-the-secret"))
    wrong_region = world.python("produce", topic=topic, records=_records(1, "x"), timeout=30,
                                region=PAYMENTS_REGION)
    for run in (wrong_secret, wrong_region):
        assert run.code == 3 and "auth_error" in run.result, (run.result, run.stderr)
    logs = _broker_logs_since(sizes)
    assert "OAUTHBEARER (MSK IAM): refused: the signature does not match" in logs
    assert (f"OAUTHBEARER (MSK IAM): refused: the token is for "
            f"https://kafka.{PAYMENTS_REGION}.amazonaws.com") in logs


def test_an_expired_token_is_refused(world: World) -> None:
    """A token the signer library made 20 minutes ago (valid for 15 minutes): libfaketime
    moves the signer's clock back."""
    if shutil.which("faketime") is None:
        pytest.skip("faketime (Debian package faketime) is not installed: make setup")
    topic = _topic(world, "expired", partitions=1)
    sizes = _log_sizes(world)
    token = world.work / "expired-token"
    signed = subprocess.run(
        ["faketime", "-f", "-20m", sys.executable, "-c",
         "from aws_msk_iam_sasl_signer import MSKAuthTokenProvider as P; "
         f"print(P.generate_auth_token('{ORDERS_REGION}')[0])"],
        capture_output=True, text=True, check=True, timeout=60,
        env={**msk.aws_env(region=ORDERS_REGION), "PATH": "/usr/bin:/bin"})
    token.write_text(signed.stdout.strip())
    expired = world.python("produce", topic=topic, records=_records(1, "x"), timeout=30,
                           token_file=token)
    assert expired.code == 3 and "auth_error" in expired.result, (expired.result, expired.stderr)
    assert "OAUTHBEARER (MSK IAM): refused: the signature expired at" in _broker_logs_since(sizes)


def test_java_aws_msk_iam_wrong_secret_hears_access_denied(world: World) -> None:
    topic = _topic(world, "denied", partitions=1)
    job = ClientJob(client="java", bootstrap=ORDERS_BOOT, topic=topic, netns=world.topo.client,
                    security=ClientSecurity(protocol="SSL", ca_file=world.ca),
                    extra=msk.java_iam_props("AWS_MSK_IAM") | {"max.block.ms": "15000"},
                    env=msk.aws_env(region=ORDERS_REGION, secret="not-the-secret"),
                    classpath=msk.iam_client_jars(), timeout=60,
                    records=[(b"k", b"v")])
    sizes = _log_sizes(world)
    with pytest.raises(ClientError) as caught:
        produce_job(job)
    assert "Access denied: the signature does not match" in caught.value.stderr
    assert (f"AWS_MSK_IAM: refused (signed for host {ORDERS['boot']}): the signature does not "
            "match") in _broker_logs_since(sizes)


# -- routing by name, without metadata or discovery ------------------------------------------------


def test_metadata_names_brokers_by_their_names_not_node_ids(world: World) -> None:
    run = world.python("metadata", topic="-")
    assert run.code == 0, (run.result, run.stderr)
    assert run.result["brokers"] == {
        str(node): f"b-{n}.orders.example.com:{LB_PORT}" for node, n in NUMBERS.items()}
    run = world.python("metadata", PAYMENTS_BOOT, topic="-", region=PAYMENTS_REGION)
    assert run.code == 0, (run.result, run.stderr)
    assert run.result["brokers"] == {
        str(node): f"b-{node}.payments.example.com:{LB_PORT}" for node in world.payments.names}
    # the status page of the instance that relayed the metadata: node id, edge and upstream
    status, body = world.edges["a"].get("/status.json")
    assert status == 200
    [orders] = [c for c in json.loads(body)["clusters"] if c["name"] == "orders"]
    assert {b["node_id"]: (b["edge_address"], b["upstream_address"])
            for b in orders["brokers"]} == {
        node: (f"b-{n}.orders.example.com:{LB_PORT}", f"{world.orders.names[node]}:9098")
        for node, n in NUMBERS.items()}


def test_doctor_knows_a_fresh_instance_needs_no_metadata(world: World) -> None:
    """IAM clusters refuse the doctor's unauthenticated Metadata; both patterns make that moot."""
    out = world.topo.run("edge", [sys.executable, "-m", "kafka_edge.cli", "doctor", "--config",
                                  str(world.work / "edge-a.yaml"), "--format", "json",
                                  "--timeout", "5"], check=False, timeout=120)
    rows = json.loads(out.stdout)["findings"]
    discovery = {r["scope"]: r for r in rows if r["check"] == "discovery"}
    assert discovery["orders"]["status"] == "PASS"
    assert "upstream.broker_name_pattern gives each broker's address" in discovery["orders"][
        "detail"]
    assert discovery["payments"]["status"] == "PASS"
    assert "upstream.broker_address_pattern" in discovery["payments"]["detail"]


def test_fresh_instances_reach_every_broker_by_name_alone(world: World) -> None:
    """Both instances restarted: A answers the bootstrap and the metadata, B gets every broker
    connection and has never seen metadata naming a broker; producing to every partition of a
    topic led by all three brokers needs B to dial b97, b12 and b305 from the names alone."""
    for label in ("a", "b"):
        world.edges[label].stop()
        world.edges[label].start()
    topic = _topic(world, "fresh", partitions=6)
    leaders = set(world.orders.kafka.partition_leaders(topic).values())
    assert leaders == set(NUMBERS)
    sent = _records(600, "fresh")
    run = world.python("produce", topic=topic, records=sent)
    assert run.code == 0, (run.result, run.stderr)
    assert sorted(run.result["partitions"]) == [str(p) for p in range(6)]
    a, b = world.edges["a"], world.edges["b"]
    assert a.metric("kafka_edge_connections_total", cluster="orders", target="broker") == 0
    assert b.metric("kafka_edge_connections_total", cluster="orders", target="bootstrap") == 0
    assert b.metric("kafka_edge_connections_total", cluster="orders", target="broker") >= 3
    assert b.metric("kafka_edge_discovery_requests_total") == 0  # no discovery at all
    run = world.python("consume", topic=topic, count=len(sent), group=f"g-{topic}")
    assert run.code == 0 and sorted(run.records) == sorted(sent), (run.result, run.stderr)


# -- two MSK clusters, two domains, one listener, and the second client network ------------------


def test_two_clusters_on_one_listener_from_the_vpn_network(world: World) -> None:
    orders_topic = _topic(world, "vpn-o", partitions=2)
    payments_topic = _topic(world, "vpn-p", partitions=2, cluster="payments")
    sent = _records(100, "vpn")
    for bootstrap, topic, region in ((ORDERS_BOOT, orders_topic, ORDERS_REGION),
                                     (PAYMENTS_BOOT, payments_topic, PAYMENTS_REGION)):
        run = world.python("produce", bootstrap, topic=topic, records=sent, region=region,
                           where=world.vpn)
        assert run.code == 0, (run.result, run.stderr)
        run = world.python("consume", bootstrap, topic=topic, count=len(sent), region=region,
                           group=f"g-{topic}", where=world.vpn)
        assert run.code == 0 and sorted(run.records) == sorted(sent), (run.result, run.stderr)
    orders = world.python("metadata", ORDERS_BOOT, topic="-", where=world.vpn)
    payments = world.python("metadata", PAYMENTS_BOOT, topic="-", region=PAYMENTS_REGION,
                            where=world.vpn)
    assert orders_topic in orders.result["topics"]
    assert payments_topic not in orders.result["topics"]
    assert payments_topic in payments.result["topics"]
    assert orders_topic not in payments.result["topics"]

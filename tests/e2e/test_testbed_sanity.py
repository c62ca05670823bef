"""The test bed itself: real clients against real brokers, no proxy in between.

Each of the five clients produces and consumes 1,000 keyed records on the 3-broker cluster's
SASL_SSL listener (SCRAM-SHA-512); every client is also checked with the other mechanisms;
plus the Java transactional producer, broker restarts and the sweep of leftovers.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter

import pytest
from testbed import procs
from testbed.clients import (
    CLIENTS,
    ClientSecurity,
    consume,
    produce,
    produce_transactional,
    unsupported_reason,
)
from testbed.cluster import KafkaCluster

pytestmark = pytest.mark.e2e

N = 1000
RECORDS = [(f"key-{i}".encode(), f"value-{i}-{'v' * (i % 50)}".encode()) for i in range(N)]


def _security(cluster: KafkaCluster, listener: str, mechanism: str | None = None) -> ClientSecurity:
    sec = cluster.client_security(listener, mechanism)
    return sec


def _skip_unsupported(client: str, sec: ClientSecurity) -> None:
    reason = unsupported_reason(client, sec)
    if reason is not None:
        pytest.skip(reason)


@pytest.mark.parametrize("client", CLIENTS)
def test_1000_records_sasl_ssl_scram_sha_512(kafka3: KafkaCluster, client: str) -> None:
    sec = _security(kafka3, "SASL_SSL", "SCRAM-SHA-512")
    _skip_unsupported(client, sec)
    topic = f"sanity-scram-{client}"
    kafka3.create_topic(topic, partitions=3, replication_factor=3)
    bootstrap = kafka3.bootstrap("SASL_SSL")
    produce(client, bootstrap, topic, RECORDS, sec)
    got = consume(client, bootstrap, topic, N, sec, group=f"sanity-{client}")
    assert len(got) == N
    assert Counter(got) == Counter(RECORDS)


def test_1000_records_kcat_sasl_ssl_plain(kafka3: KafkaCluster) -> None:
    """kcat cannot do SCRAM against Kafka 4 (see clients.unsupported_reason): PLAIN instead."""
    sec = _security(kafka3, "SASL_SSL", "PLAIN")
    _skip_unsupported("kcat", sec)
    topic = "sanity-plain-kcat"
    kafka3.create_topic(topic, partitions=3, replication_factor=3)
    bootstrap = kafka3.bootstrap("SASL_SSL")
    produce("kcat", bootstrap, topic, RECORDS, sec)
    got = consume("kcat", bootstrap, topic, N, sec, group="sanity-kcat")
    assert Counter(got) == Counter(RECORDS)


@pytest.mark.parametrize("mechanism", ["PLAIN", "OAUTHBEARER", "SCRAM-SHA-256"])
@pytest.mark.parametrize("client", CLIENTS)
def test_mechanisms(kafka3: KafkaCluster, client: str, mechanism: str) -> None:
    sec = _security(kafka3, "SASL_SSL", mechanism)
    _skip_unsupported(client, sec)
    topic = f"sanity-mech-{mechanism.lower()}-{client}"
    records = RECORDS[:20]
    bootstrap = kafka3.bootstrap("SASL_SSL")
    produce(client, bootstrap, topic, records, sec)  # auto-created topic
    got = consume(client, bootstrap, topic, len(records), sec)
    assert Counter(got) == Counter(records)


def test_wrong_password_is_rejected(kafka3: KafkaCluster) -> None:
    from testbed.clients import ClientError

    good = _security(kafka3, "SASL_SSL", "SCRAM-SHA-512")
    bad = ClientSecurity(
        protocol="SASL_SSL",
        ca_file=good.ca_file,
        mechanism="SCRAM-SHA-512",
        username="alice",
        password="wrong",
    )
    with pytest.raises(ClientError, match=r"(?i)authentication"):
        produce(
            "confluent", kafka3.bootstrap("SASL_SSL"), "sanity-denied", RECORDS[:1], bad, timeout=20
        )


def test_single_broker_plaintext_and_ssl(kafka1: KafkaCluster) -> None:
    assert kafka1.listeners == ("PLAINTEXT", "SSL", "SASL_SSL")
    produce("kafka-python", kafka1.bootstrap("PLAINTEXT"), "sanity-k1", RECORDS[:10])
    sec = _security(kafka1, "SSL")
    got = consume("aiokafka", kafka1.bootstrap("SSL"), "sanity-k1", 10, sec)
    assert Counter(got) == Counter(RECORDS[:10])
    # the certificate is for localhost / 127.0.0.1: hostname checking on works
    got = consume("confluent", kafka1.bootstrap("SSL"), "sanity-k1", 10, sec)
    assert len(got) == 10


def test_java_transactional_producer(kafka3: KafkaCluster) -> None:
    sec = _security(kafka3, "SASL_SSL", "SCRAM-SHA-512")
    topic = "sanity-tx"
    kafka3.create_topic(topic, partitions=3, replication_factor=3)
    bootstrap = kafka3.bootstrap("SASL_SSL")
    aborted = [(b"aborted-%d" % i, b"never") for i in range(10)]
    committed = RECORDS[:100]
    produce_transactional(bootstrap, topic, aborted, sec, commit=False)
    produce_transactional(
        bootstrap, topic, committed, sec, transactional_id="sanity-tx-1", batches=2
    )
    got = consume("java", bootstrap, topic, 100, sec, extra={"isolation.level": "read_committed"})
    assert Counter(got) == Counter(committed)


def test_broker_stop_and_start_moves_leaders(kafka3: KafkaCluster) -> None:
    topic = "sanity-leaders"
    kafka3.create_topic(topic, partitions=3, replication_factor=3)
    leaders = kafka3.partition_leaders(topic)
    victim = leaders[0]
    try:
        kafka3.stop_broker(victim)  # inside: a stop that fails half way is undone too
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            moved = kafka3.partition_leaders(topic)
            if victim not in moved.values() and -1 not in moved.values():
                break
            time.sleep(0.5)
        assert victim not in moved.values(), moved
        sec = _security(kafka3, "SASL_SSL", "SCRAM-SHA-512")
        produce("confluent", kafka3.bootstrap("SASL_SSL"), topic, RECORDS[:50], sec)
    finally:
        kafka3.start_broker(victim)
    assert sorted(kafka3.wait_for_brokers()) == kafka3.node_ids
    addresses = kafka3.broker_addresses()
    assert len(addresses) == 3 * (len(kafka3.listeners) + 1)
    sec = _security(kafka3, "SASL_SSL", "SCRAM-SHA-512")
    got = consume("kafka-python", kafka3.bootstrap("SASL_SSL"), topic, 50, sec)
    assert Counter(got) == Counter(RECORDS[:50])


def test_sweep_kills_processes_of_dead_owners_only(tmp_path: object) -> None:
    code = "import time; time.sleep(120)"
    dead = subprocess.Popen(  # owner 1:0 never matches pid 1's real start time: "dead"
        [sys.executable, "-c", code, f"{procs.MARKER_DIR}/nonexistent/sweep-test",
         f"{procs.MARKER_OWNER}1:0"]
    )  # fmt: skip
    alive = subprocess.Popen(
        [sys.executable, "-c", code, f"{procs.MARKER_DIR}/nonexistent/sweep-test",
         f"{procs.MARKER_OWNER}{procs.owner_token()}"]
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not all(
            procs.process_matches(p.pid, "/nonexistent/sweep-test") for p in (dead, alive)
        ):
            time.sleep(0.05)
        swept = procs.sweep_stale()
        assert dead.pid in [p.pid for p in swept]
        assert alive.pid not in [p.pid for p in swept]
        assert dead.wait(timeout=10) != 0
        assert alive.poll() is None
    finally:
        for p in (dead, alive):
            p.kill()
            p.wait()

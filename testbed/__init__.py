"""Test bed for kafka-edge: real Apache Kafka clusters, real Kafka clients, network namespaces.

Not installed with the package: tests import it because the repository root is on ``sys.path``.

- :mod:`testbed.cluster`: KRaft clusters of real brokers (``KafkaCluster``), also behind
  ``scripts/kafka-local`` (:mod:`testbed.cli`).
- :mod:`testbed.jvm`: Kafka's jars, the class path, JVM options and logging set-up.
- :mod:`testbed.clients`: Java, librdkafka (confluent-kafka, kcat), kafka-python and aiokafka
  clients, each run as a subprocess (optionally inside a network namespace).
- :mod:`testbed.netns`: client / edge / cluster network namespaces joined by veth pairs.
- :mod:`testbed.procs`: process markers, clean shut-down and the sweep of leftovers.
- :mod:`testbed.msk`: emulated Amazon MSK (broker names, IAM on 9098) and AWS's IAM clients;
  :mod:`testbed.layout` (brokers with addresses and names of their own) and
  :mod:`testbed.dnsmasq` (a DNS server in a namespace).
"""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
CACHE_DIR = REPO_ROOT / ".cache"

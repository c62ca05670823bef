"""The fast subset of the fault scenarios (tests/chaos/cases.py): 10,000 numbered records per
scenario through kafka-edge while the fault happens; nothing lost, nothing twice, order kept.
``make chaos`` runs the same scenarios with 100,000 records."""

from __future__ import annotations

from pathlib import Path

import pytest
from testbed.cluster import KafkaCluster

from tests.chaos import cases

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

RECORDS = 10_000


def test_broker_killed(kafka3: KafkaCluster, tmp_path: Path) -> None:
    cases.broker_killed(kafka3, tmp_path, RECORDS)


def test_leaders_moved(kafka3: KafkaCluster, tmp_path: Path) -> None:
    cases.leaders_moved(kafka3, tmp_path, RECORDS)


@pytest.mark.parametrize("idempotent", [True, False], ids=["idempotent", "non-idempotent"])
def test_drained_restart(kafka3: KafkaCluster, tmp_path: Path, idempotent: bool) -> None:
    cases.drained_restart(kafka3, tmp_path, RECORDS, idempotent=idempotent)


def test_config_reloaded(kafka1: KafkaCluster, tmp_path: Path) -> None:
    cases.config_reloaded(kafka1, tmp_path, RECORDS)


def test_certificates_rotated(kafka1: KafkaCluster, tmp_path: Path) -> None:
    cases.certificates_rotated(kafka1, tmp_path, RECORDS)


def test_worker_killed(kafka1: KafkaCluster, tmp_path: Path) -> None:
    cases.worker_killed(kafka1, tmp_path, RECORDS)


def test_edge_killed_behind_haproxy(kafka1: KafkaCluster, tmp_path: Path) -> None:
    cases.edge_killed_behind_haproxy(kafka1, tmp_path, RECORDS)

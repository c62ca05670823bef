"""The clock offset from DescribeQuorum: parsing the answer, the arithmetic and the verdict
(pure; tests/e2e/test_doctor.py asks real brokers)."""

from __future__ import annotations

from typing import Any

import pytest

from kafka_edge.doctor.clock import (
    CLOCK_FAIL_S,
    CLOCK_WARN_S,
    QUORUM_VERSION,
    ClockSample,
    ClockUnavailable,
    clock_finding,
    controller_clock_ms,
    quorum_supported,
    sample,
)
from kafka_edge.doctor.report import Status
from kafka_edge.protocol import codec
from kafka_edge.protocol.messages import API_VERSIONS_RESPONSE, DESCRIBE_QUORUM_RESPONSE

HEADER_V1 = b"\x00\x00\x00\x07\x00"  # correlation id 7, no tagged fields


def _voter(node: int, fetched: int) -> dict[str, Any]:
    return {"ReplicaId": node, "LogEndOffset": 10, "LastFetchTimestamp": fetched,
            "LastCaughtUpTimestamp": fetched}


def _answer(*, leader: int = 2, voters: list[dict[str, Any]] | None = None, error: int = 0,
            partition_error: int = 0, topic: str = "__cluster_metadata") -> bytes:
    voters = voters if voters is not None else [_voter(1, 1_000), _voter(2, 1_700_000_000_123)]
    value = {"ErrorCode": error, "Topics": [{"TopicName": topic, "Partitions": [{
        "PartitionIndex": 0, "ErrorCode": partition_error, "LeaderId": leader, "LeaderEpoch": 4,
        "HighWatermark": 10, "CurrentVoters": voters, "Observers": [_voter(9, 5)]}]}]}
    return HEADER_V1 + codec.encode(DESCRIBE_QUORUM_RESPONSE, QUORUM_VERSION, value)


def test_the_leaders_own_last_fetch_timestamp_is_its_clock() -> None:
    assert controller_clock_ms(_answer()) == (2, 1_700_000_000_123)
    assert controller_clock_ms(_answer(leader=1)) == (1, 1_000)


@pytest.mark.parametrize(("answer", "words"), [
    (_answer(error=31), "CLUSTER_AUTHORIZATION_FAILED (DESCRIBE on the CLUSTER resource"),
    (_answer(partition_error=6), "NOT_LEADER_OR_FOLLOWER"),
    (_answer(voters=[_voter(2, -1)]), "no timestamp for the leader (node 2)"),
    (_answer(leader=3), "no timestamp for the leader (node 3)"),
    (_answer(topic="other"), "does not describe __cluster_metadata"),
])
def test_answers_without_a_clock(answer: bytes, words: str) -> None:
    with pytest.raises(ClockUnavailable) as raised:
        controller_clock_ms(answer)
    assert words in str(raised.value)


def test_describe_quorum_support_from_api_versions() -> None:
    def answer(max_version: int | None) -> bytes:
        keys = [{"ApiKey": 3, "MinVersion": 0, "MaxVersion": 12}]
        if max_version is not None:
            keys.append({"ApiKey": 55, "MinVersion": 0, "MaxVersion": max_version})
        return b"\x00\x00\x00\x01" + codec.encode(API_VERSIONS_RESPONSE, 0,
                                                  {"ErrorCode": 0, "ApiKeys": keys})

    assert quorum_supported(answer(2)) and quorum_supported(answer(1))
    assert not quorum_supported(answer(0))  # v0 has no timestamps
    assert not quorum_supported(answer(None))  # ZooKeeper mode


def test_offset_is_measured_from_the_round_trips_midpoint() -> None:
    s = sample(1, 1_000_010_500, sent=1_000_000.0, received=1_000_001.0)
    assert s.offset_s == pytest.approx(10.0)  # controller 10.5 s, midpoint 0.5 s later
    assert s.uncertainty_s == pytest.approx(0.501)  # half the round trip + the millisecond
    assert s.controller == 1


@pytest.mark.parametrize(("offset", "uncertainty", "status", "words"), [
    (0.002, 0.001, Status.PASS, "0.002 s behind"),
    (-(CLOCK_WARN_S + 1), 0.01, Status.WARN, "ahead of the active controller's (node 3)"),
    (CLOCK_WARN_S + 1, 2.0, Status.PASS, "behind"),  # within what the measurement can tell
    (CLOCK_FAIL_S + 100, 0.01, Status.FAIL, "MSK IAM"),
    (-(CLOCK_FAIL_S + 1), 2.0, Status.WARN, "NTP"),
])
def test_clock_verdicts(offset: float, uncertainty: float, status: Status, words: str) -> None:
    finding = clock_finding("orders", "10.0.0.1:9096",
                            ClockSample(offset_s=offset, uncertainty_s=uncertainty, controller=3))
    assert (finding.check, finding.status) == ("clock", status)
    assert words in finding.detail

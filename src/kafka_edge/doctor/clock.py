"""The clock offset between this host and the cluster, from DescribeQuorum.

Kafka has no request for the time, and almost nothing a broker answers carries its clock: record
timestamps are the producer's (unless a topic uses LogAppendTime, and then only a Produce
answer, which needs write rights, shows it); TLS 1.3 handshakes carry no time and a TLS 1.2
server random is random bytes in current Java. One answer does: in a KRaft cluster (Kafka 3.3
and later, DescribeQuorum v1) the active controller reports, for its own entry among the voters,
``LastFetchTimestamp`` = its wall clock when it built the answer (Apache Kafka's
``LeaderState.describeReplicaState``). Brokers forward the request to the controller, so any
bootstrap server can be asked; it needs DESCRIBE on the CLUSTER resource where an authorizer
is enabled.

So the offset measured is this host's against the active controller's, one of the cluster's
nodes. The controller stamped its answer at some moment between sending the request and
receiving the answer, so the true offset lies within half the round trip of the midpoint
estimate (plus the millisecond of the timestamp): the uncertainty reported. Of a few samples,
the one with the shortest round trip is kept. Brokers other than the controller are not
measured; no Kafka request shows their clocks without write rights.

Pure: the request body, the answer's parsing and the verdict; ``probes.py`` sends the request.
"""

from __future__ import annotations

from dataclasses import dataclass

from kafka_edge.doctor.report import Finding, Status
from kafka_edge.protocol import codec
from kafka_edge.protocol.errors import ProtocolError
from kafka_edge.protocol.messages import API_VERSIONS_RESPONSE, DESCRIBE_QUORUM_RESPONSE
from kafka_edge.protocol.primitives import INT32, skip_tagged_section, write_uvarint

API_VERSIONS, DESCRIBE_QUORUM = 18, 55
QUORUM_VERSION = 1  # the first with LastFetchTimestamp (KIP-836, Kafka 3.3)
METADATA_TOPIC, METADATA_PARTITION = "__cluster_metadata", 0
CLOCK_WARN_S = 5.0  # well-synchronised clocks agree to milliseconds: more says time sync is off
# AWS request signatures (the SigV4 signing MSK IAM authentication uses) are refused when the
# signer's clock and the verifier's differ by more than 5 minutes
CLOCK_FAIL_S = 300.0
_ERRORS = {29: "TOPIC_AUTHORIZATION_FAILED", 31: "CLUSTER_AUTHORIZATION_FAILED",
           35: "UNSUPPORTED_VERSION", 6: "NOT_LEADER_OR_FOLLOWER", 3: "UNKNOWN_TOPIC_OR_PARTITION"}


class ClockUnavailable(Exception):
    """The cluster's clock cannot be read through the Kafka protocol (the reason)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ClockSample:
    offset_s: float  # the controller's clock minus this host's (positive: this host is behind)
    uncertainty_s: float  # the true offset is within this of offset_s
    controller: int  # node id of the active controller


def describe_quorum_request() -> bytes:
    """DescribeQuorum v1 for the metadata log's partition (a flexible request body)."""
    out = bytearray()
    write_uvarint(out, 2)  # Topics: one (compact array length + 1)
    name = METADATA_TOPIC.encode()
    write_uvarint(out, len(name) + 1)
    out += name
    write_uvarint(out, 2)  # Partitions: one
    out += INT32.pack(METADATA_PARTITION)
    out += b"\0\0\0"  # tagged fields: partition, topic, request
    return bytes(out)


def quorum_supported(api_versions_answer: bytes) -> bool:
    """Does an ApiVersions v0 answer (header + body) list DescribeQuorum at v1 or later?"""
    value = codec.decode_all(API_VERSIONS_RESPONSE, 0, api_versions_answer, 4)
    if value["ErrorCode"] != 0:
        raise ProtocolError(f"ApiVersions answered error {value['ErrorCode']}")
    return any(k["ApiKey"] == DESCRIBE_QUORUM and k["MaxVersion"] >= QUORUM_VERSION
               for k in value["ApiKeys"])


def controller_clock_ms(answer: bytes) -> tuple[int, int]:
    """(controller node id, its clock in ms) from a DescribeQuorum v1 answer (header + body).
    Raises ClockUnavailable for an error answer, ProtocolError for a malformed one."""
    body = skip_tagged_section(answer, 4)
    value = codec.decode_all(DESCRIBE_QUORUM_RESPONSE, QUORUM_VERSION, answer, body)
    _raise_for(value["ErrorCode"])
    for topic in value["Topics"]:
        for part in topic["Partitions"]:
            if topic["TopicName"] != METADATA_TOPIC or part["PartitionIndex"] != 0:
                continue
            _raise_for(part["ErrorCode"])
            leader = part["LeaderId"]
            for voter in part["CurrentVoters"]:
                if voter["ReplicaId"] == leader and voter["LastFetchTimestamp"] >= 0:
                    return leader, voter["LastFetchTimestamp"]
            raise ClockUnavailable(f"the answer has no timestamp for the leader (node {leader})")
    raise ClockUnavailable(f"the answer does not describe {METADATA_TOPIC}")


def _raise_for(error: int) -> None:
    if error == 0:
        return
    name = _ERRORS.get(error, f"error {error}")
    hint = " (DESCRIBE on the CLUSTER resource is needed)" if error == 31 else ""
    raise ClockUnavailable(f"DescribeQuorum answered {name}{hint}")


def sample(controller: int, clock_ms: int, sent: float, received: float) -> ClockSample:
    """One measurement: ``sent`` and ``received`` are this host's wall clock (seconds)."""
    midpoint = (sent + received) / 2
    return ClockSample(offset_s=clock_ms / 1000 - midpoint,
                       uncertainty_s=(received - sent) / 2 + 0.001, controller=controller)


def clock_finding(scope: str, subject: str, s: ClockSample) -> Finding:
    """PASS within :data:`CLOCK_WARN_S`, WARN beyond, FAIL beyond :data:`CLOCK_FAIL_S`; the
    bound compared is the smallest offset the measurement allows."""
    least = max(0.0, abs(s.offset_s) - s.uncertainty_s)
    direction = "behind" if s.offset_s > 0 else "ahead of"
    detail = (f"this host's clock is {abs(s.offset_s):.3f} s {direction} the active controller's "
              f"(node {s.controller}), +/- {s.uncertainty_s:.3f} s")
    if least > CLOCK_FAIL_S:
        status = Status.FAIL
        detail += (f": over {CLOCK_FAIL_S:.0f} s, the limit of time-bound authentication "
                   "(AWS request signatures of MSK IAM); fix time synchronisation (NTP)")
    elif least > CLOCK_WARN_S:
        status = Status.WARN
        detail += f": over {CLOCK_WARN_S:.0f} s; is time synchronisation (NTP) running?"
    else:
        status = Status.PASS
    return Finding(check="clock", scope=scope, subject=subject, status=status, detail=detail)

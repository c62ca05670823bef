"""The generated definitions, and the package's sans-I/O rule."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

import kafka_edge.protocol
from kafka_edge.protocol.messages import API_KEYS, KAFKA_VERSION, RESPONSES

ROOT = Path(__file__).resolve().parents[3]
PACKAGE = Path(kafka_edge.protocol.__file__).parent


def load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_messages", ROOT / "scripts/gen_messages.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["gen_messages"] = module
    spec.loader.exec_module(module)
    return module


def test_messages_py_is_generated_from_the_kafka_jar() -> None:
    gen = load_generator()
    if not gen.DEFAULT_JAR.is_file():
        pytest.skip(f"{gen.DEFAULT_JAR} not downloaded (make setup)")
    expected = gen.render(gen.load_definitions(gen.DEFAULT_JAR), gen.KAFKA_VERSION)
    assert (PACKAGE / "messages.py").read_text(encoding="utf-8") == expected, (
        "messages.py is stale: run scripts/gen_messages.py")


def test_generated_header() -> None:
    first = (PACKAGE / "messages.py").read_text(encoding="utf-8").splitlines()[0]
    assert first == (f"# generated from Apache Kafka {KAFKA_VERSION} message definitions by "
                     "scripts/gen_messages.py; do not edit")


def test_comment_stripping_keeps_strings() -> None:
    gen = load_generator()
    text = '{"a": "http://x//y", // comment\n "b": "\\"//\\""} // end'
    assert gen.strip_comments(text) == '{"a": "http://x//y", \n "b": "\\"//\\""} '
    assert gen.parse_versions("3+", "x") == (3, None)
    assert gen.parse_versions("0-12", "x") == (0, 12)
    assert gen.parse_versions("7", "x") == (7, 7)
    assert gen.parse_versions("none", "x") is None


@pytest.mark.parametrize(("key", "name", "low", "high", "flexible"), [
    (0, "Produce", 3, 13, 9),
    (1, "Fetch", 4, 18, 12),
    (3, "Metadata", 0, 13, 9),
    (10, "FindCoordinator", 0, 6, 3),
    (17, "SaslHandshake", 0, 1, None),
    (18, "ApiVersions", 0, 5, 3),
    (36, "SaslAuthenticate", 0, 2, 2),
    (55, "DescribeQuorum", 0, 2, 0),
    (60, "DescribeCluster", 0, 2, 0),
    (78, "ShareFetch", 1, 2, 0),
    (79, "ShareAcknowledge", 1, 2, 0),
])
def test_api_keys_match_the_protocol_notes(key: int, name: str, low: int, high: int,
                                           flexible: int | None) -> None:
    spec = API_KEYS[key]
    assert (spec.key, spec.name, spec.min_version, spec.max_version) == (key, name, low, high)
    assert spec.request_flexible_from == spec.response_flexible_from == flexible


def test_controller_only_apis_are_not_broker_apis() -> None:
    # Vote, BeginQuorumEpoch, EndQuorumEpoch, AlterPartition, FetchSnapshot, BrokerRegistration,
    # BrokerHeartbeat, AllocateProducerIds, ControllerRegistration, UpdateRaftVoter
    for key in (52, 53, 54, 56, 59, 62, 63, 67, 70, 82):
        assert key not in API_KEYS
    # removed APIs (LeaderAndIsr, StopReplica, UpdateMetadata, ControlledShutdown)
    for key in (4, 5, 6, 7):
        assert key not in API_KEYS


def test_responses_match_their_requests() -> None:
    for key, message in RESPONSES.items():
        assert message.api_key == key
        assert message.valid == (API_KEYS[key].min_version, API_KEYS[key].max_version)
        assert message.flexible_from == API_KEYS[key].response_flexible_from

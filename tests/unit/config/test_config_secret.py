"""Secrets never show: not in repr, str, f-strings, the redacted dump, YAML/JSON dumps or errors."""

from __future__ import annotations

import copy
import dataclasses
import json
import pickle

import pytest
import yaml

from kafka_edge.config import Secret


def test_secret_hides_its_value() -> None:
    secret = Secret("hunter2")
    assert repr(secret) == "***"
    assert str(secret) == "***"
    assert f"{secret} {secret!r}" == "*** ***"
    assert "%s" % secret == "***"  # noqa: UP031 - the old formatting path too
    assert secret.reveal() == "hunter2"


def test_secret_is_immutable_comparable_and_hashable() -> None:
    secret = Secret("hunter2")
    with pytest.raises(AttributeError):
        secret._value = "x"
    with pytest.raises(AttributeError):
        del secret._value
    assert secret == Secret("hunter2")
    assert secret != Secret("hunter3")
    assert secret != "hunter2"
    assert hash(secret) == hash(Secret("hunter2"))
    assert copy.deepcopy(secret) == secret
    assert pickle.loads(pickle.dumps(secret)).reveal() == "hunter2"


@pytest.fixture
def literal_config(harness, data):
    """The full configuration with the three ways of giving a password, one literal."""
    sasl = data["clusters"][0]["upstream"]["discovery"]["sasl"]
    del sasl["password_env"]
    sasl["password"] = "literal-Pa55"
    data["clusters"][1]["upstream"]["discovery"] = {
        "sasl": {"mechanism": "SCRAM-SHA-256", "username": "u", "password_env": "ORDERS_PASSWORD"}}
    return harness.parse(data)


SECRETS = ("literal-Pa55", "s3cr3t-Pa55word", "file-pa55word")


def test_no_secret_in_repr_or_str(literal_config) -> None:
    for text in (repr(literal_config), str(literal_config)):
        for secret in SECRETS:
            assert secret not in text
    assert "password=***" in repr(literal_config)


def test_no_secret_in_the_redacted_dict_or_its_dumps(literal_config) -> None:
    dumped = literal_config.redacted_dict()
    for text in (repr(dumped), json.dumps(dumped), yaml.safe_dump(dumped)):
        for secret in SECRETS:
            assert secret not in text
    clusters = dumped["clusters"]
    assert clusters[0]["upstream"]["discovery"]["sasl"]["password"] == "***"
    assert clusters[1]["upstream"]["discovery"]["sasl"] == {
        "mechanism": "SCRAM-SHA-256", "username": "u", "password_env": "ORDERS_PASSWORD"}
    assert "password" not in clusters[2]["upstream"]["discovery"]["sasl"]


def test_no_secret_through_dataclasses_asdict(literal_config) -> None:
    text = repr(dataclasses.asdict(literal_config))
    for secret in SECRETS:
        assert secret not in text


def test_the_values_are_still_there(literal_config) -> None:
    passwords = [c.upstream.discovery.sasl.password.reveal() for c in literal_config.clusters]
    assert passwords == list(SECRETS)


def test_no_secret_in_errors(harness, data) -> None:
    # The environment variable's value is never part of a message, even when other things fail.
    data["clusters"][0]["upstream"]["discovery"]["sasl"]["mechanism"] = "nope"
    data["clusters"][2]["upstream"]["discovery"]["sasl"]["password"] = "second-source-Pa55"
    errors = "\n".join(harness.errors(data))
    for secret in (*SECRETS, "second-source-Pa55"):
        assert secret not in errors

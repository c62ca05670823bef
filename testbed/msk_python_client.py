"""A Python MSK IAM client for the emulated-MSK tests: confluent-kafka (librdkafka) with
SASL/OAUTHBEARER, the token made by AWS's aws-msk-iam-sasl-signer-python
(``MSKAuthTokenProvider.generate_auth_token(region)``, credentials from the AWS environment
variables), as AWS documents for Python clients of MSK IAM.

Run as a script (``testbed.msk.python_client`` builds the command line; the namespace is the
caller's)::

    msk_python_client.py produce --bootstrap B --ca CA --topic T --region R < "key<TAB>value" lines
    msk_python_client.py consume --bootstrap B --ca CA --topic T --region R --count N --group G
    msk_python_client.py metadata --bootstrap B --ca CA --topic T --region R   (brokers, topics)

``--token-file F`` uses the token in F instead of signing one (a token signed earlier, e.g. an
expired one; librdkafka is told it is valid for 10 minutes, so only the broker can refuse it).
The last line of stdout is JSON: ``{"ok": true, "count": N, "partitions": {..}}`` (consume:
each record first, as ``key<TAB>value``), or ``{"ok": false, "auth_error": "..."}`` with exit
status 3 when the cluster refused the authentication, or ``{"ok": false, "error": "..."}``
with exit status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aws_msk_iam_sasl_signer import MSKAuthTokenProvider  # type: ignore[import-untyped]
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer

AUTH_CODES = {KafkaError._AUTHENTICATION, KafkaError.SASL_AUTHENTICATION_FAILED}


class AuthFailed(Exception):
    pass


def _config(args: argparse.Namespace, errors: list[KafkaError]) -> dict[str, Any]:
    def oauth_cb(_config: str) -> tuple[str, float]:
        if args.token_file:
            return Path(args.token_file).read_text().strip(), time.time() + 600
        token, expiry_ms = MSKAuthTokenProvider.generate_auth_token(args.region)
        return token, expiry_ms / 1000

    return {
        "bootstrap.servers": args.bootstrap,
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "OAUTHBEARER",
        "ssl.ca.location": args.ca,
        "oauth_cb": oauth_cb,
        "error_cb": errors.append,
    }


def _check(errors: list[KafkaError]) -> None:
    for error in errors:
        if error.code() in AUTH_CODES:
            raise AuthFailed(error.str())


def _until(deadline: float, errors: list[KafkaError], done: Callable[[], bool],
           step: Callable[[], object]) -> None:
    while not done():
        _check(errors)
        if time.monotonic() > deadline:
            raise TimeoutError("timed out")
        step()
    _check(errors)


def _metadata(producer: Producer, errors: list[KafkaError], deadline: float) -> Any:
    """The cluster's metadata, once the client has authenticated (or AuthFailed)."""
    found: list[Any] = []

    def ask() -> None:
        try:
            found.append(producer.list_topics(timeout=1))
        except KafkaException:
            producer.poll(0.2)

    _until(deadline, errors, lambda: bool(found), ask)
    return found[0]


def metadata(args: argparse.Namespace) -> dict[str, Any]:
    errors: list[KafkaError] = []
    meta = _metadata(Producer(_config(args, errors)), errors,
                     time.monotonic() + args.timeout)
    return {"ok": True, "brokers": {str(b.id): f"{b.host}:{b.port}"
                                    for b in meta.brokers.values()},
            "topics": sorted(meta.topics)}


def produce(args: argparse.Namespace) -> dict[str, Any]:
    errors: list[KafkaError] = []
    producer = Producer(_config(args, errors) | {"acks": "all"})
    partitions: dict[str, int] = {}
    failed: list[str] = []

    def report(err: KafkaError | None, msg: Any) -> None:
        if err is not None:
            failed.append(err.str())
        else:
            partitions[str(msg.partition())] = partitions.get(str(msg.partition()), 0) + 1

    lines = [line.rstrip("\n") for line in sys.stdin if line.strip()]
    deadline = time.monotonic() + args.timeout
    _metadata(producer, errors, deadline)
    for line in lines:
        key, _, value = line.partition("\t")
        producer.produce(args.topic, value=value.encode(), key=key.encode(), on_delivery=report)
    sent = len(lines)
    _until(deadline, errors, lambda: sum(partitions.values()) + len(failed) >= sent,
           lambda: producer.poll(0.2))
    if failed:
        raise RuntimeError(f"{len(failed)} records failed: {failed[0]}")
    return {"ok": True, "count": sent, "partitions": partitions}


def consume(args: argparse.Namespace) -> dict[str, Any]:
    errors: list[KafkaError] = []
    consumer = Consumer(_config(args, errors) | {
        "group.id": args.group, "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe([args.topic])
    got: list[tuple[str, str]] = []
    deadline = time.monotonic() + args.timeout

    def step() -> None:
        msg = consumer.poll(0.5)
        if msg is None:
            return
        error = msg.error()
        if error is not None:
            if error.code() in AUTH_CODES:
                raise AuthFailed(error.str())
            return
        got.append(((msg.key() or b"").decode(), (msg.value() or b"").decode()))

    try:
        _until(deadline, errors, lambda: len(got) >= args.count, step)
        consumer.commit(asynchronous=False)  # the group's offsets, through the coordinator
    finally:
        consumer.close()
    for key, value in got:
        print(f"{key}\t{value}")
    return {"ok": True, "count": len(got)}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("action", choices=("produce", "consume", "metadata"))
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--ca", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--region", required=True)
    parser.add_argument("--group", default="msk-python")
    parser.add_argument("--count", type=int, default=0)
    parser.add_argument("--token-file")
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args()
    try:
        result = {"produce": produce, "consume": consume, "metadata": metadata}[args.action](args)
    except AuthFailed as exc:
        print(json.dumps({"ok": False, "auth_error": str(exc)}))
        return 3
    except Exception as exc:  # reported to the caller as data
        print(json.dumps({"ok": False, "error": f"{type(exc).__name__}: {exc}"}))
        return 2
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())

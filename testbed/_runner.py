"""Runs one Python Kafka client operation in its own process (so it can run in a network namespace).

Usage: ``python testbed/_runner.py LIB ACTION SPEC_JSON``

- LIB: ``confluent`` | ``kafka-python`` | ``aiokafka`` | ``admin`` (kafka-python admin client)
- ACTION: ``produce`` (records on stdin), ``consume`` (records on stdout); for ``admin``:
  ``wait-brokers``, ``create-topic``, ``describe-topic``.
- Records travel as JSON lines ``[key_b64 | null, value_b64 | null]``.

Exit status 0 on success; 2 with a message on stderr on failure. Standalone: stdlib and the
client library only (this file is executed by path, not imported from the test bed).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import socket
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

Record = tuple[bytes | None, bytes | None]


class RunnerError(Exception):
    pass


def _b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode()


def _unb64(text: str | None) -> bytes | None:
    return None if text is None else base64.b64decode(text)


def read_records() -> list[Record]:
    out: list[Record] = []
    for line in sys.stdin:
        if line.strip():
            key, value = json.loads(line)
            out.append((_unb64(key), _unb64(value)))
    return out


def write_records(records: list[Record]) -> None:
    for key, value in records:
        sys.stdout.write(json.dumps([_b64(key), _b64(value)]) + "\n")
    sys.stdout.flush()


def typed(value: str) -> Any:
    """``extra`` values arrive as strings; the Python clients want ints, bools, ..."""
    try:
        parsed = json.loads(value)
    except ValueError:
        return value
    # kafka-python wants tuples (api_version=(0, 10, 0)); JSON has only lists
    return tuple(parsed) if isinstance(parsed, list) else parsed


def unsecured_jwt(subject: str, lifetime: int = 3600) -> str:
    """An unsecured JWS (``alg: none``) as Kafka's unsecured OAUTHBEARER validator accepts it."""

    def enc(obj: dict[str, Any]) -> str:
        raw = json.dumps(obj, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    now = int(time.time())
    return f"{enc({'alg': 'none'})}.{enc({'sub': subject, 'iat': now, 'exp': now + lifetime})}."


# --------------------------------------------------------------------------------------------
# confluent-kafka (librdkafka)


def confluent_config(spec: dict[str, Any]) -> dict[str, Any]:
    sec = spec["security"]
    conf: dict[str, Any] = {"bootstrap.servers": spec["bootstrap"]}
    conf["security.protocol"] = sec["protocol"].lower()
    if "SSL" in sec["protocol"]:
        if sec.get("ca_file"):
            conf["ssl.ca.location"] = sec["ca_file"]
        conf["ssl.endpoint.identification.algorithm"] = "https" if sec["check_hostname"] else "none"
    if sec["protocol"].startswith("SASL"):
        conf["sasl.mechanisms"] = sec["mechanism"]
        if sec["mechanism"] == "OAUTHBEARER":
            conf["enable.sasl.oauthbearer.unsecure.jwt"] = True
            conf["sasl.oauthbearer.config"] = f"principal={sec['username']}"
        else:
            conf["sasl.username"] = sec["username"]
            conf["sasl.password"] = sec["password"]
    return conf


def _confluent_error_cb(errors: list[str]) -> Callable[[Any], None]:
    from confluent_kafka import KafkaError

    def cb(err: Any) -> None:
        if err.code() == KafkaError._AUTHENTICATION or err.fatal():
            errors.append(f"fatal client error: {err}")
        else:
            print(f"client error (retrying): {err}", file=sys.stderr)

    return cb


def confluent_produce(spec: dict[str, Any]) -> None:
    from confluent_kafka import Producer

    records = read_records()
    errors: list[str] = []
    conf = confluent_config(spec) | {
        "acks": "all",
        "message.timeout.ms": int(spec["timeout"] * 1000),
        "error_cb": _confluent_error_cb(errors),
    }
    conf.update(spec["extra"])
    producer = Producer(conf)
    acked = 0

    def on_delivery(err: Any, _msg: Any) -> None:
        nonlocal acked
        if err is not None:
            errors.append(f"delivery failed: {err}")
        else:
            acked += 1

    deadline = time.monotonic() + spec["timeout"]
    for key, value in records:
        while True:
            try:
                producer.produce(spec["topic"], value=value, key=key, on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
    while acked + len(errors) < len(records) and time.monotonic() < deadline and not errors:
        producer.flush(0.2)
    if errors:
        raise RunnerError("; ".join(dict.fromkeys(errors)))
    if acked != len(records):
        raise RunnerError(f"timed out: {acked} of {len(records)} records acknowledged")


def confluent_consume(spec: dict[str, Any]) -> None:
    from confluent_kafka import Consumer, KafkaError

    errors: list[str] = []
    group = spec["group"]
    conf = confluent_config(spec) | {
        "group.id": group or f"testbed-{uuid.uuid4().hex[:12]}",
        "auto.offset.reset": "earliest",
        "enable.auto.commit": group is not None,
        "error_cb": _confluent_error_cb(errors),
    }
    conf.update(spec["extra"])
    consumer = Consumer(conf)
    out: list[Record] = []
    deadline = time.monotonic() + spec["timeout"]
    try:
        consumer.subscribe([spec["topic"]])
        while len(out) < spec["count"] and time.monotonic() < deadline and not errors:
            msg = consumer.poll(0.2)
            if msg is None:
                continue
            error = msg.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    continue
                errors.append(f"consume error: {error}")
                break
            out.append((msg.key(), msg.value()))
    finally:
        consumer.close()
    if errors:
        raise RunnerError("; ".join(dict.fromkeys(errors)))
    finish_consume(spec, out)


# --------------------------------------------------------------------------------------------
# kafka-python


def kafka_python_config(spec: dict[str, Any]) -> dict[str, Any]:
    sec = spec["security"]
    conf: dict[str, Any] = {
        "bootstrap_servers": spec["bootstrap"].split(","),
        "security_protocol": sec["protocol"],
    }
    if "SSL" in sec["protocol"]:
        conf["ssl_cafile"] = sec.get("ca_file")
        conf["ssl_check_hostname"] = sec["check_hostname"]
    if sec["protocol"].startswith("SASL"):
        conf["sasl_mechanism"] = sec["mechanism"]
        if sec["mechanism"] == "OAUTHBEARER":
            from kafka.net.sasl.oauth import AbstractTokenProvider

            class Unsecured(AbstractTokenProvider):  # type: ignore[misc]
                def token(self) -> str:
                    return unsecured_jwt(sec["username"])

            conf["sasl_oauth_token_provider"] = Unsecured()
        else:
            conf["sasl_plain_username"] = sec["username"]
            conf["sasl_plain_password"] = sec["password"]
    return conf


def kafka_python_produce(spec: dict[str, Any]) -> None:
    from kafka import KafkaProducer

    records = read_records()
    conf = kafka_python_config(spec) | {
        "acks": "all",
        "max_block_ms": int(spec["timeout"] * 1000),
        "request_timeout_ms": 30000,
        "delivery_timeout_ms": max(int(spec["timeout"] * 1000), 31000),
    }
    conf.update({k: typed(v) for k, v in spec["extra"].items()})
    producer = KafkaProducer(**conf)
    try:
        futures = [producer.send(spec["topic"], key=k, value=v) for k, v in records]
        producer.flush(timeout=spec["timeout"])
        for fut in futures:
            fut.get(timeout=max(1.0, spec["timeout"]))
    finally:
        producer.close(timeout=10)


def kafka_python_consume(spec: dict[str, Any]) -> None:
    from kafka import KafkaConsumer

    group = spec["group"]
    conf = kafka_python_config(spec) | {
        "group_id": group,
        "auto_offset_reset": "earliest",
        "enable_auto_commit": group is not None,
    }
    conf.update({k: typed(v) for k, v in spec["extra"].items()})
    consumer = KafkaConsumer(**conf)
    out: list[Record] = []
    deadline = time.monotonic() + spec["timeout"]
    try:
        consumer.subscribe([spec["topic"]])
        while len(out) < spec["count"] and time.monotonic() < deadline:
            batch = consumer.poll(timeout_ms=500, max_records=spec["count"] - len(out))
            for msgs in batch.values():
                out.extend((m.key, m.value) for m in msgs)
    finally:
        consumer.close()
    finish_consume(spec, out)


# --------------------------------------------------------------------------------------------
# aiokafka


def aiokafka_config(spec: dict[str, Any]) -> dict[str, Any]:
    sec = spec["security"]
    conf: dict[str, Any] = {
        "bootstrap_servers": spec["bootstrap"].split(","),
        "security_protocol": sec["protocol"],
    }
    if "SSL" in sec["protocol"]:
        from aiokafka.helpers import create_ssl_context

        ctx = create_ssl_context(cafile=sec.get("ca_file"))
        ctx.check_hostname = sec["check_hostname"]
        conf["ssl_context"] = ctx
    if sec["protocol"].startswith("SASL"):
        conf["sasl_mechanism"] = sec["mechanism"]
        if sec["mechanism"] == "OAUTHBEARER":
            from aiokafka.abc import AbstractTokenProvider

            class Unsecured(AbstractTokenProvider):  # type: ignore[misc]
                async def token(self) -> str:
                    return unsecured_jwt(sec["username"])

            conf["sasl_oauth_token_provider"] = Unsecured()
        else:
            conf["sasl_plain_username"] = sec["username"]
            conf["sasl_plain_password"] = sec["password"]
    return conf


async def _aiokafka_produce(spec: dict[str, Any], records: list[Record]) -> None:
    from aiokafka import AIOKafkaProducer

    conf = aiokafka_config(spec) | {"acks": "all"}
    conf.update({k: typed(v) for k, v in spec["extra"].items()})
    producer = AIOKafkaProducer(**conf)
    await producer.start()
    try:
        futures = [await producer.send(spec["topic"], key=k, value=v) for k, v in records]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


def aiokafka_produce(spec: dict[str, Any]) -> None:
    records = read_records()
    asyncio.run(asyncio.wait_for(_aiokafka_produce(spec, records), spec["timeout"]))


async def _aiokafka_consume(spec: dict[str, Any], out: list[Record]) -> None:
    from aiokafka import AIOKafkaConsumer

    group = spec["group"]
    conf = aiokafka_config(spec) | {
        "group_id": group,
        "auto_offset_reset": "earliest",
        "enable_auto_commit": group is not None,
    }
    conf.update({k: typed(v) for k, v in spec["extra"].items()})
    consumer = AIOKafkaConsumer(spec["topic"], **conf)
    await consumer.start()
    deadline = time.monotonic() + spec["timeout"]
    try:
        while len(out) < spec["count"] and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500, max_records=spec["count"] - len(out))
            for msgs in batch.values():
                out.extend((m.key, m.value) for m in msgs)
    finally:
        await consumer.stop()


def aiokafka_consume(spec: dict[str, Any]) -> None:
    out: list[Record] = []

    async def main() -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(_aiokafka_consume(spec, out), spec["timeout"] + 15)

    asyncio.run(main())
    finish_consume(spec, out)


def finish_consume(spec: dict[str, Any], out: list[Record]) -> None:
    write_records(out)
    if len(out) != spec["count"]:
        raise RunnerError(f"expected {spec['count']} records, got {len(out)}")


# --------------------------------------------------------------------------------------------
# admin (kafka-python), for the cluster launcher


def _admin(spec: dict[str, Any]) -> Any:
    from kafka.admin import KafkaAdminClient

    return KafkaAdminClient(
        bootstrap_servers=spec["bootstrap"].split(","),
        request_timeout_ms=10000,
        client_id="kafka-testbed-admin",
    )


def admin_wait_brokers(spec: dict[str, Any]) -> None:
    """Exit 0 once the cluster's metadata lists ``count`` brokers."""
    deadline = time.monotonic() + spec["timeout"]
    last = "no answer"
    # cheap TCP polling first: the admin client backs off for seconds after a refused connection
    for address in spec["bootstrap"].split(","):
        host, _, port = address.rpartition(":")
        while time.monotonic() < deadline:
            try:
                socket.create_connection((host, int(port)), timeout=1.0).close()
                break
            except OSError as exc:
                last = f"{address}: {exc}"
                time.sleep(0.05)
    while time.monotonic() < deadline:
        try:
            admin = _admin(spec)
            try:
                brokers = admin.describe_cluster()["brokers"]
            finally:
                admin.close()
        except Exception as exc:
            last = f"{type(exc).__name__}: {exc}"
        else:
            ids = sorted(b["broker_id"] for b in brokers)
            if len(ids) >= spec["count"]:
                print(json.dumps({"brokers": ids}))
                return
            last = f"brokers {ids}"
        time.sleep(0.1)
    raise RunnerError(f"cluster not ready: {last}")


def admin_create_topic(spec: dict[str, Any]) -> None:
    admin = _admin(spec)
    try:
        admin.create_topics(
            {
                spec["name"]: {
                    "num_partitions": spec["partitions"],
                    "replication_factor": spec["replication_factor"],
                    "configs": spec.get("configs") or {},
                }
            },
            timeout_ms=30000,
            wait_for_metadata=True,
        )
    finally:
        admin.close()


def admin_describe_topic(spec: dict[str, Any]) -> None:
    admin = _admin(spec)
    try:
        (topic,) = admin.describe_topics([spec["name"]])
    finally:
        admin.close()
    print(json.dumps(topic, default=str))


ACTIONS: dict[tuple[str, str], Callable[[dict[str, Any]], None]] = {
    ("confluent", "produce"): confluent_produce,
    ("confluent", "consume"): confluent_consume,
    ("kafka-python", "produce"): kafka_python_produce,
    ("kafka-python", "consume"): kafka_python_consume,
    ("aiokafka", "produce"): aiokafka_produce,
    ("aiokafka", "consume"): aiokafka_consume,
    ("admin", "wait-brokers"): admin_wait_brokers,
    ("admin", "create-topic"): admin_create_topic,
    ("admin", "describe-topic"): admin_describe_topic,
}


def main(argv: list[str]) -> int:
    lib, action, spec_json = argv
    spec = json.loads(spec_json)
    try:
        ACTIONS[lib, action](spec)
    except Exception as exc:
        print(f"{lib} {action} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

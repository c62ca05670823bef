"""The demo's client: knows only the custom domain. Produces and consumes N records through
boot.<domain> with SASL_SSL (SCRAM-SHA-512) and prints a JSON summary.

--map NAME=IP (repeatable) maps names inside this process only, for machines where the demo
cannot give the client its own network namespace and hosts file.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import time
import uuid
import warnings
from typing import Any


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--ca", required=True)
    parser.add_argument("--user", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--map", action="append", default=[])
    args = parser.parse_args()

    if args.map:
        mapping = dict(m.split("=", 1) for m in args.map)
        real = socket.getaddrinfo

        def mapped(host: Any, *rest: Any, **kw: Any) -> Any:
            return real(mapping.get(host, host), *rest, **kw)

        socket.getaddrinfo = mapped  # type: ignore[assignment]

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer

    common: dict[str, Any] = {
        "bootstrap_servers": [args.bootstrap], "security_protocol": "SASL_SSL",
        "ssl_cafile": args.ca, "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": args.user, "sasl_plain_password": args.password,
    }
    admin = KafkaAdminClient(**common)
    brokers = sorted((b.get("broker_id", b.get("node_id")), b["host"], b["port"])
                     for b in admin.describe_cluster()["brokers"])
    admin.close()

    payload = b"x" * 1000
    t0 = time.monotonic()
    producer = KafkaProducer(acks="all", linger_ms=5, batch_size=256 * 1024, **common)
    futures = [producer.send(args.topic, key=f"k{i}".encode(), value=payload)
               for i in range(args.records)]
    producer.flush(120)
    acked = sum(1 for f in futures if f.get(timeout=60) is not None)
    producer.close()
    produce_s = time.monotonic() - t0

    t0 = time.monotonic()
    consumer = KafkaConsumer(args.topic, auto_offset_reset="earliest",
                             group_id=f"demo-{uuid.uuid4().hex[:6]}", **common)
    received = 0
    deadline = time.monotonic() + 120
    while received < args.records and time.monotonic() < deadline:
        for batch in consumer.poll(timeout_ms=1000).values():
            received += len(batch)
    consumer.close()
    consume_s = time.monotonic() - t0
    mb = args.records * len(payload) / 1e6
    print(json.dumps({
        "brokers": [f"{n}: {h}:{p}" for n, h, p in brokers],
        "sent": acked, "received": received,
        "produce_mb_s": round(mb / produce_s, 1), "consume_mb_s": round(mb / consume_s, 1),
    }))
    return 0 if acked == received == args.records else 1


if __name__ == "__main__":
    sys.exit(main())

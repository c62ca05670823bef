"""``kafka-local``: the command line of :mod:`testbed.cluster` (``scripts/kafka-local``).

  kafka-local up --brokers 3 --security ssl,sasl_ssl --dir /tmp/k3     # prints JSON
  kafka-local status --dir /tmp/k3     # exit 0: all brokers running, 3: not
  kafka-local down --dir /tmp/k3       # SIGTERM, SIGKILL after --timeout
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from testbed.cluster import (
    DEFAULT_MECHANISMS,
    DEFAULT_VERSION,
    ClusterError,
    KafkaCluster,
    forget_all,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kafka-local", description="Local Apache Kafka clusters")
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="format and start a KRaft cluster, print its JSON description")
    up.add_argument("--dir", required=True, help="cluster directory (config, data, logs)")
    up.add_argument("--brokers", type=int, default=1)
    up.add_argument(
        "--security",
        action="append",
        default=[],
        help="plaintext|ssl|sasl_plaintext|sasl_ssl; repeat or comma-separate for several "
        "listeners (an internal PLAINTEXT listener is always there)",
    )
    up.add_argument(
        "--mechanisms",
        action="append",
        default=[],
        help=f"SASL mechanisms (default {','.join(DEFAULT_MECHANISMS)})",
    )
    up.add_argument("--kafka-version", default=DEFAULT_VERSION)
    up.add_argument(
        "--config", action="append", default=[], metavar="KEY=VALUE", help="extra broker config"
    )
    up.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    up.add_argument("--advertised-host", default=None, help="name/address brokers advertise")
    up.add_argument("--netns", default=None, help="run brokers under `ip netns exec NETNS`")
    up.add_argument(
        "--advertise-listener",
        action="append",
        default=[],
        metavar="NAME=PROTOCOL://HOST:BASE",
        help="extra listener NAME (PROTOCOL: plaintext|ssl) on every node, bound on --host at a "
        "free port and advertised as HOST:BASE+N (N: node id), e.g. for a TCP forwarder in front; "
        "repeatable",
    )
    up.add_argument("--heap", default="512m", help="broker -Xmx (default 512m)")
    up.add_argument("--timeout", type=float, default=120.0)
    for name, text in (("down", "stop a cluster"), ("status", "report a cluster")):
        p = sub.add_parser(name, help=text)
        p.add_argument("--dir", required=True)
        if name == "down":
            p.add_argument("--timeout", type=float, default=30.0)
    return parser


def run_cli(argv: Sequence[str] | None = None) -> int:
    """``kafka-local`` (see scripts/kafka-local): the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)

    if args.command == "up":
        extras = {}
        for item in args.config:
            key, sep, value = item.partition("=")
            if not sep:
                parser.error(f"--config needs KEY=VALUE, got {item!r}")
            extras[key.strip()] = value
        advertise: dict[str, str] = {}
        for item in args.advertise_listener:
            name, sep, spec = item.partition("=")
            if not sep:
                parser.error(f"--advertise-listener needs NAME=PROTOCOL://HOST:BASE, got {item!r}")
            if name.strip().upper() in {k.upper() for k in advertise}:
                parser.error(f"--advertise-listener {name.strip()} given twice")
            advertise[name.strip()] = spec
        try:
            cluster = KafkaCluster.start(
                args.dir,
                brokers=args.brokers,
                security=args.security or ["PLAINTEXT"],
                mechanisms=args.mechanisms or DEFAULT_MECHANISMS,
                kafka_version=args.kafka_version,
                config=extras,
                host=args.host,
                advertised_host=args.advertised_host,
                netns=args.netns,
                advertise_listeners=advertise,
                owned=False,
                heap=args.heap,
                timeout=args.timeout,
            )
        except (ClusterError, ValueError) as exc:
            print(f"kafka-local: {exc}", file=sys.stderr)
            return 1
        forget_all()  # not owned: outlives this command
        print(json.dumps(cluster.describe(), indent=2))
        return 0
    try:
        cluster = KafkaCluster.load(args.dir)
    except ClusterError as exc:
        print(f"kafka-local: {exc}", file=sys.stderr)
        return 1
    if args.command == "down":
        result = cluster.stop(timeout=args.timeout)
        print(json.dumps({"dir": str(cluster.dir), "stopped": result}, indent=2))
        return 0
    desc = cluster.describe()
    desc["running"] = all(b["running"] for b in desc["brokers"])
    print(json.dumps(desc, indent=2))
    return 0 if desc["running"] else 3

"""Command line: argument parsing only. Builds the configuration and hands it to the relay."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from kafka_edge import __version__
from kafka_edge.config import Config, ConfigError, load_config, quick_config

log = logging.getLogger("kafka_edge.cli")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kafka-edge",
        description="Kafka-protocol-aware edge proxy: TLS termination, SNI or port routing, "
        "broker address rewriting.",
    )
    parser.add_argument("--version", action="version", version=f"kafka-edge {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser("run", help="serve (with --config FILE, or the quick flags)")
    run.add_argument("--config", metavar="FILE", help="YAML configuration file")
    run.add_argument("--upstream", metavar="HOST:PORT",
                     help="quick mode: one plaintext cluster's bootstrap server")
    run.add_argument("--listen", metavar="HOST:PORT",
                     help="quick mode: bootstrap port; broker N on the port 1 + N after it")
    run.add_argument("--advertise", metavar="HOST", help="quick mode: host given to clients")
    run.add_argument("--workers", default="1", metavar="N|auto",
                     help="worker processes sharing the ports (SO_REUSEPORT) under a supervisor "
                     "that restarts them; auto = the CPUs this process may use; default 1")
    # set by the supervisor for each worker it starts: where to serve its admin pages, and
    # whose exit makes it drain and stop
    run.add_argument("--worker-socket", help=argparse.SUPPRESS)
    run.add_argument("--supervisor-pid", type=int, help=argparse.SUPPRESS)

    check = sub.add_parser("check", help="validate a configuration file and exit")
    check.add_argument("--config", metavar="FILE", required=True)

    dns = sub.add_parser("dns", help="print the DNS records client networks need")
    dns.add_argument("--config", metavar="FILE", required=True)
    dns.add_argument("--target", metavar="NAME",
                     help="the edge endpoint (load balancer DNS name) the records point at")

    doctor = sub.add_parser("doctor", help="check a configuration against the live cluster: "
                            "upstreams, metadata, clock, edge names and certificates")
    doctor.add_argument("--config", metavar="FILE", required=True)
    doctor.add_argument("--format", choices=("table", "json"), default="table")
    doctor.add_argument("--timeout", type=float, default=5.0, metavar="SECONDS",
                        help="limit of each network step (default 5)")
    return parser


def _load(args: argparse.Namespace) -> Config:
    if args.config:
        if args.command == "run" and (args.upstream or args.listen):
            raise ConfigError(["--config cannot be combined with --upstream/--listen"])
        # DNS records need names alone: no certificate or secret is read for them
        return load_config(args.config, names_only=args.command == "dns")
    if args.upstream and args.listen:
        return quick_config(upstream=args.upstream, listen=args.listen, advertise=args.advertise)
    raise ConfigError(["give --config FILE, or --upstream HOST:PORT and --listen HOST:PORT"])


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        config = _load(args)
    except ConfigError as exc:
        print(f"kafka-edge: invalid configuration:\n{exc}", file=sys.stderr)
        return 2
    if args.command == "check":
        from kafka_edge.config.advice import config_warnings

        for warning in config_warnings(config):
            print(f"warning: {warning}", file=sys.stderr)
        print(f"configuration OK: {len(config.clusters)} cluster(s), "
              f"{len(config.listeners)} SNI listener(s)")
        return 0
    if args.command == "doctor":
        from kafka_edge.doctor import run_doctor

        return run_doctor(config, timeout=args.timeout, output_format=args.format)
    if args.command == "dns":
        from kafka_edge.routing.dns import dns_records

        print(dns_records(config, target=args.target))
        return 0
    from kafka_edge.observability.logs import setup_logging

    setup_logging(config.observability.log_level, config.observability.log_format)
    from kafka_edge.relay.supervisor import worker_count

    try:
        workers = worker_count(args.workers)
    except ValueError:
        print(f"kafka-edge: --workers takes a number >= 1 or auto, not {args.workers!r}",
              file=sys.stderr)
        return 2
    if workers > 1 and args.worker_socket is None:
        from kafka_edge.relay.supervisor import run_supervised

        return run_supervised(config, _worker_argv(args), workers)
    from kafka_edge.relay.process import serve

    return serve(config, config_path=args.config, worker_socket=args.worker_socket,
                 supervisor_pid=args.supervisor_pid)


def _worker_argv(args: argparse.Namespace) -> list[str]:
    """The command a supervised worker runs: this one, as one process."""
    argv = [sys.executable, "-m", "kafka_edge.cli", "run"]
    for flag in ("config", "upstream", "listen", "advertise"):
        value = getattr(args, flag)
        if value is not None:
            argv += [f"--{flag}", value]
    return argv


if __name__ == "__main__":
    sys.exit(main())

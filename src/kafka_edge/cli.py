"""Command line: argument parsing only. Builds the configuration and hands it to the relay."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from kafka_edge import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kafka-edge",
        description="Kafka-protocol-aware edge proxy: TLS termination, SNI or port routing, "
        "broker address rewriting.",
    )
    parser.add_argument("--version", action="version", version=f"kafka-edge {__version__}")
    parser.add_subparsers(dest="command", metavar="COMMAND")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

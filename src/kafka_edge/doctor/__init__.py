"""``kafka-edge doctor``: a configuration checked against the live cluster and this host.

Reachability of every upstream (TLS verified as configured), the cluster's metadata as the
proxy's discovery reads it, whether a fresh instance can find brokers, the clock offset to the
cluster, and whether every edge name clients will use resolves and is covered by a served
certificate with time left. The result is a PASS / WARN / FAIL (/ SKIP) table; any FAIL makes
the exit status 1. Every network step is bounded by ``timeout`` seconds.

Modules: ``run`` (the checks, in order), ``probes`` (network I/O), ``certs`` and ``clock``
(what is measured, and the verdicts), ``report`` (findings and their rendering).
"""

from __future__ import annotations

import asyncio

from kafka_edge.config import Config
from kafka_edge.doctor.report import exit_code, render_json, render_table
from kafka_edge.doctor.run import diagnose


def run_doctor(config: Config, *, timeout: float, output_format: str = "table") -> int:
    """Run every check, print the result (``table`` or ``json``); the exit status."""
    findings = asyncio.run(diagnose(config, timeout=timeout))
    print(render_json(findings) if output_format == "json" else render_table(findings))
    return exit_code(findings)

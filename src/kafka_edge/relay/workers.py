"""Several worker processes sharing the same ports through SO_REUSEPORT.

One Python process relays on one core. With ``--workers N`` the parent forks N children that
each bind every port with SO_REUSEPORT, so the kernel spreads new connections across them. The
workers share nothing (the proxy is stateless), exactly like several instances behind a load
balancer. The parent forwards SIGTERM/SIGINT/SIGHUP and exits when all children have exited.
Each worker serves its own /metrics and /readyz on the shared health port (one of them answers
each scrape), so per-worker counters are sampled, not summed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from typing import TYPE_CHECKING

from kafka_edge.relay.process import serve

if TYPE_CHECKING:
    from kafka_edge.config import Config


def run_workers(config: Config, workers: int) -> int:
    children: list[int] = []
    for _ in range(workers):
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                code = serve(config, reuse_port=True)
            finally:
                os._exit(code)
        children.append(pid)

    def forward(signum: int, _frame: object) -> None:
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signum)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, forward)
    status = 0
    for child in children:
        _, code = os.waitpid(child, 0)
        status = status or os.waitstatus_to_exitcode(code)
    sys.stdout.flush()
    return status

"""One proxy process's life: the event loop, signals, start-up, serving, draining.

Used by the command line for one process, and for each supervised worker (relay/supervisor.py
starts them as fresh processes running the same command).
"""

from __future__ import annotations

import asyncio
import functools
import gc
import logging
import os
import signal

from kafka_edge.config import Config
from kafka_edge.relay.open_files import raise_open_files_limit

log = logging.getLogger("kafka_edge.cli")


def serve(config: Config, *, config_path: str | None = None, worker_socket: str | None = None,
          supervisor_pid: int | None = None) -> int:
    """Run one proxy process until SIGTERM/SIGINT; SIGHUP reloads the configuration from
    ``config_path`` (relay/reload.py; without a file, the certificates).

    A supervised worker (``worker_socket`` set) binds the Kafka ports with SO_REUSEPORT beside
    its siblings, serves its admin pages on that local socket, and drains and stops if its
    supervisor (``supervisor_pid``) goes away.

    Before anything is bound, the process raises its open-files soft limit to the hard limit
    (relay/open_files.py)."""
    raise_open_files_limit(config)
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on every supported platform
        uvloop = None  # type: ignore[assignment]
    main = _serve(config, config_path, worker_socket, supervisor_pid)
    code = uvloop.run(main) if uvloop is not None else asyncio.run(main)
    # drained and stopped: a late SIGTERM (a supervisor forwarding one) must not turn the exit
    # status into "killed"
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    return code


async def _serve(config: Config, config_path: str | None, worker_socket: str | None,
                 supervisor_pid: int | None) -> int:
    from kafka_edge.relay.memory import connection_activity, trim_after_churn
    from kafka_edge.relay.reload import reload
    from kafka_edge.relay.server import Proxy

    loop = asyncio.get_running_loop()
    proxy = Proxy(config, config_path=config_path)
    loop.set_exception_handler(proxy.on_loop_exception)
    proxy.reuse_port = worker_socket is not None
    proxy.admin_socket = worker_socket
    stop = asyncio.Event()
    orphan_watch = (loop.create_task(_watch_supervisor(supervisor_pid, stop))
                    if supervisor_pid is not None else None)
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    proxy.reload = functools.partial(reload, proxy)
    loop.add_signal_handler(signal.SIGHUP, lambda: proxy.spawn(reload(proxy, "SIGHUP")))
    try:
        await proxy.start()
    except OSError as exc:
        log.error("cannot start: %s", exc)
        await proxy.stop(0)
        return 1
    # What start-up built (modules, codecs, configuration) lives as long as the process;
    # moved out of the collector's sight, a full collection scans only what the relay
    # allocates since, instead of pausing every connection to walk it all (measured in
    # docs/performance.md).
    gc.collect()
    gc.freeze()
    # TLS connection churn leaves freed C memory resident unless handed back (relay/memory.py)
    trimmer = loop.create_task(trim_after_churn(lambda: connection_activity(proxy.metrics)))
    await stop.wait()
    trimmer.cancel()
    if orphan_watch is not None:
        orphan_watch.cancel()
    log.info("shutting down: draining connections")
    await proxy.stop(config.limits.drain_timeout_s)
    log.info("stopped")
    return 0


async def _watch_supervisor(supervisor_pid: int, stop: asyncio.Event) -> None:
    """A worker whose supervisor died (SIGKILL leaves no time to stop it) drains and stops."""
    while True:  # polled: portable, where prctl(PR_SET_PDEATHSIG) would need ctypes
        await asyncio.sleep(1.0)
        if os.getppid() != supervisor_pid:
            break
    log.error("supervisor (pid %d) is gone: draining and stopping", supervisor_pid)
    stop.set()

"""One proxy process's life: the event loop, signals, start-up, serving, draining.

Used by the command line for one process, and for each supervised worker (relay/supervisor.py
starts them as fresh processes running the same command).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal

from kafka_edge.config import Config

log = logging.getLogger("kafka_edge.cli")


def serve(config: Config, *, worker_socket: str | None = None,
          supervisor_pid: int | None = None) -> int:
    """Run one proxy process until SIGTERM/SIGINT; SIGHUP reloads certificates.

    A supervised worker (``worker_socket`` set) binds the Kafka ports with SO_REUSEPORT beside
    its siblings, serves its admin pages on that local socket, and drains and stops if its
    supervisor (``supervisor_pid``) goes away."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on every supported platform
        uvloop = None  # type: ignore[assignment]
    main = _serve(config, worker_socket, supervisor_pid)
    if uvloop is not None:
        return uvloop.run(main)
    return asyncio.run(main)


async def _serve(config: Config, worker_socket: str | None, supervisor_pid: int | None) -> int:
    from kafka_edge.relay.server import Proxy

    loop = asyncio.get_running_loop()
    loop.set_exception_handler(_loop_exception)
    proxy = Proxy(config)
    proxy.reuse_port = worker_socket is not None
    proxy.admin_socket = worker_socket
    stop = asyncio.Event()
    orphan_watch = (loop.create_task(_watch_supervisor(supervisor_pid, stop))
                    if supervisor_pid is not None else None)
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, proxy.reload_certificates)
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
    await stop.wait()
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


def _loop_exception(loop: asyncio.AbstractEventLoop, context: dict[str, object]) -> None:
    """TLS handshake failures and resets are a client's problem: one line, no traceback."""
    exc = context.get("exception")
    message = context.get("message", "")
    if isinstance(exc, (OSError, TimeoutError)) or "handshake" in str(message).lower():
        logging.getLogger("kafka_edge.tls").warning(
            "%s: %s", message, exc or "", extra={"peer": _peer_of(context)})
        return
    loop.default_exception_handler(context)


def _peer_of(context: dict[str, object]) -> str | None:
    transport = context.get("transport")
    get = getattr(transport, "get_extra_info", None)
    peer = get("peername") if get else None
    return f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else None

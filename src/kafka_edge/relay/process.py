"""One proxy process's life: the event loop, signals, start-up, serving, draining.

Used by the command line (one process) and by the workers (each forked child): both import this
module, which imports neither.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal

from kafka_edge.config import Config

log = logging.getLogger("kafka_edge.cli")


def serve(config: Config, *, reuse_port: bool = False) -> int:
    """Run one proxy process until SIGTERM/SIGINT; SIGHUP reloads certificates."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on every supported platform
        uvloop = None  # type: ignore[assignment]
    if uvloop is not None:
        return uvloop.run(_serve(config, reuse_port))
    return asyncio.run(_serve(config, reuse_port))


async def _serve(config: Config, reuse_port: bool) -> int:
    from kafka_edge.relay.server import Proxy

    loop = asyncio.get_running_loop()
    loop.set_exception_handler(_loop_exception)
    proxy = Proxy(config)
    proxy.reuse_port = reuse_port
    stop = asyncio.Event()
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
    log.info("shutting down: draining connections")
    await proxy.stop(config.limits.drain_timeout_s)
    log.info("stopped")
    return 0


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

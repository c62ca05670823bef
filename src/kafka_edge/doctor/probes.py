"""What ``kafka-edge doctor`` asks the network: each probe bounded by a timeout.

The upstream probe connects as the proxy's dialler does (``ClusterRuntime.tls``, the host name
as server name), the metadata probe is the proxy's own discovery (``relay.discovery.discover``
with the cluster's directory, so the upstream address policy applies as in the proxy), and the
clock probe uses the same authenticated session (``relay.discovery.session``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import socket
import ssl
import threading
import time
from dataclasses import dataclass

from kafka_edge.doctor.certs import WARN_DAYS
from kafka_edge.doctor.clock import (
    API_VERSIONS,
    DESCRIBE_QUORUM,
    QUORUM_VERSION,
    ClockSample,
    ClockUnavailable,
    controller_clock_ms,
    describe_quorum_request,
    quorum_supported,
    sample,
)
from kafka_edge.doctor.report import Finding, Status
from kafka_edge.relay.cluster import ClusterRuntime
from kafka_edge.relay.discovery import DiscoveryCredentials, discover, session
from kafka_edge.routing.directory import Address, Learned

CLOCK_SAMPLES = 3
_SSL_LOCATION = re.compile(r"\s*\(_ssl\.c:\d+\)")


def describe_error(exc: BaseException) -> str:
    """An exception as a short sentence for the table."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS: the cluster's certificate is not accepted: {exc.verify_message}"
    if isinstance(exc, ssl.SSLError):
        return f"TLS: {_SSL_LOCATION.sub('', exc.reason or str(exc))}"
    if isinstance(exc, asyncio.IncompleteReadError):
        return "the connection was closed before an answer"
    if isinstance(exc, socket.gaierror):
        return f"the name does not resolve ({exc.strerror})"
    if isinstance(exc, OSError) and exc.errno:  # asyncio's own text names no reason
        return os.strerror(exc.errno)
    return str(exc) or type(exc).__name__


async def probe_upstream(runtime: ClusterRuntime, address: Address, *, subject: str,
                         timeout: float) -> Finding:
    """TCP connect and TLS handshake (verification as configured) to one upstream address."""
    host, port = address
    tls = runtime.tls
    started = time.monotonic()
    try:
        async with asyncio.timeout(timeout):
            _, writer = await asyncio.open_connection(
                host, port, ssl=tls, server_hostname=host if tls else None)
    except TimeoutError:
        return _upstream(runtime, subject, Status.FAIL,
                         f"no connection{' and TLS handshake' if tls else ''} within {timeout} s")
    except (OSError, ssl.SSLError) as exc:
        return _upstream(runtime, subject, Status.FAIL, f"cannot connect: {describe_error(exc)}")
    ms = (time.monotonic() - started) * 1000
    try:
        sslobj = writer.get_extra_info("ssl_object")
        if tls is None or sslobj is None:
            return _upstream(runtime, subject, Status.PASS,
                             f"TCP connected in {ms:.0f} ms (plaintext: upstream.tls is not set)")
        up_tls = runtime.config.upstream.tls
        checked = (f"certificate verified for {host}"
                   if up_tls is not None and up_tls.verify_hostname
                   else "certificate chain verified, host name not checked (verify_hostname: "
                        "false)")
        days = (ssl.cert_time_to_seconds(sslobj.getpeercert()["notAfter"]) - time.time()) / 86400
        status = Status.WARN if days < WARN_DAYS else Status.PASS
        return _upstream(runtime, subject, status,
                         f"{sslobj.version()} in {ms:.0f} ms, {checked}, its certificate has "
                         f"{days:.0f} days left")
    finally:
        writer.close()
        with contextlib.suppress(OSError, ssl.SSLError):
            await writer.wait_closed()


def _upstream(runtime: ClusterRuntime, subject: str, status: Status, detail: str) -> Finding:
    return Finding(check="upstream", scope=runtime.name, subject=subject, status=status,
                   detail=detail)


@dataclass(frozen=True, slots=True, kw_only=True)
class MetadataResult:
    via: Address | None  # the bootstrap server that answered (None: none did)
    brokers: dict[int, Address]  # node id -> upstream address, as the metadata names them
    error: BaseException | None  # the last bootstrap server's failure when none answered
    refused: tuple[Learned, ...] = ()  # what the answer named outside the address policy


async def read_metadata(runtime: ClusterRuntime, *, credentials: DiscoveryCredentials | None,
                        timeout: float) -> MetadataResult:
    """The proxy's discovery, with ``credentials``: each bootstrap server in turn."""
    error: BaseException | None = None
    refused: list[Learned] = []

    def learn(entries: list[Learned], source: str) -> bool:
        if runtime.learn(entries, source):
            return True
        refused.extend(e for e in entries if not runtime.directory.policy.allows(e[1]))
        return False

    for address in runtime.directory.bootstrap:
        try:
            brokers = await discover(runtime.directory, address, learn=learn,
                                     tls=runtime.tls, credentials=credentials, timeout=timeout)
        except Exception as exc:
            error = exc
            continue
        return MetadataResult(via=address, brokers=brokers, error=None)
    return MetadataResult(via=None, brokers={}, error=error, refused=tuple(dict.fromkeys(refused)))


async def measure_clock(runtime: ClusterRuntime, address: Address, *,
                        timeout: float) -> ClockSample:
    """The best of a few DescribeQuorum samples (see ``clock.py``). Raises ClockUnavailable
    when the cluster does not offer it, or the errors of the connection."""
    async with asyncio.timeout(timeout), session(address, tls=runtime.tls,
                                                 credentials=runtime.credentials) as conn:
        if not quorum_supported(await conn.call(API_VERSIONS, 0, b"")):
            raise ClockUnavailable(
                "the cluster does not offer DescribeQuorum v1 (ZooKeeper mode, or Kafka before "
                "3.3), and no other Kafka answer shows a broker's clock without write rights")
        best: ClockSample | None = None
        for _ in range(CLOCK_SAMPLES):
            sent = time.time()
            answer = await conn.call(DESCRIBE_QUORUM, QUORUM_VERSION, describe_quorum_request(),
                                     flexible=True)
            received = time.time()
            s = sample(*controller_clock_ms(answer), sent, received)
            if best is None or s.uncertainty_s < best.uncertainty_s:
                best = s
        assert best is not None
        return best


async def resolve(name: str, port: int, *, timeout: float) -> list[str]:
    """The addresses ``name`` resolves to on this host (getaddrinfo, as clients' libraries
    do). The look-up runs on a daemon thread: a resolver that hangs cannot keep doctor from
    exiting. Raises socket.gaierror, or TimeoutError after ``timeout``."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[list[str]] = loop.create_future()

    def settle(result: list[str] | None, exc: BaseException | None) -> None:
        if done.done():
            return
        if exc is not None:
            done.set_exception(exc)
        else:
            done.set_result(result or [])

    def look_up() -> None:
        result: list[str] | None = None
        error: BaseException | None = None
        try:
            infos = socket.getaddrinfo(name, port, type=socket.SOCK_STREAM)
            result = list(dict.fromkeys(str(info[4][0]) for info in infos))
        except OSError as exc:
            error = exc
        with contextlib.suppress(RuntimeError):  # the loop closed: nobody waits any more
            loop.call_soon_threadsafe(settle, result, error)

    threading.Thread(target=look_up, name=f"resolve {name}", daemon=True).start()
    async with asyncio.timeout(timeout):
        return await done

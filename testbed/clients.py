"""Real Kafka clients behind one small interface, each run as a subprocess.

Clients (``CLIENTS``):

- ``java``: Apache Kafka's console producer / consumer from the test bed's jars
  (``KAFKA_TESTBED_JAVA_CLIENT`` picks the version, default the newest), plus a small
  transactional producer (``testbed/java/TxProducer.java``, compiled on first use);
- ``confluent``: confluent-kafka (librdkafka, bundled with the wheel);
- ``kcat``: the Debian ``kcat`` binary (its own librdkafka);
- ``kafka-python`` and ``aiokafka``.

The Python clients run ``testbed/_runner.py`` under the current interpreter. Because every client
is a subprocess, ``netns="NAME"`` runs the same call inside a network namespace
(``ip netns exec NAME ...``).

Java and kcat pass records as text lines (``key<TAB>value``): their keys and values must be UTF-8
text without tab, CR or LF (:class:`ClientUnsupported` otherwise). Python clients take any bytes.

OAUTHBEARER uses *unsecured* tokens (``alg: none``, ``sub`` = ``username``) in every client,
matching the test clusters' unsecured validator; no password is needed.

One run is one :class:`ClientJob` (client, cluster address, topic, security, namespace, time
limit, extra configuration, and the records to send or how many to wait for):
:func:`produce_job` / :func:`consume_job` run it; :func:`produce` / :func:`consume` take the
same as keyword arguments.
"""

from __future__ import annotations

import base64
import functools
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from testbed.cluster import netns_prefix
from testbed.jvm import (
    DEFAULT_VERSION,
    JavacError,
    compile_java,
    java_command,
    logging_works,
    major,
    tool_jvm_options,
    tool_log_config,
    write_properties,
)

CLIENTS = ("java", "confluent", "kcat", "kafka-python", "aiokafka")
PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
MECHANISMS = ("SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN", "OAUTHBEARER")
JAVA_CLIENT_VERSION = os.environ.get("KAFKA_TESTBED_JAVA_CLIENT", "4.4.0")
RUNNER = Path(__file__).resolve().parent / "_runner.py"
TX_PRODUCER_SRC = Path(__file__).resolve().parent / "java" / "TxProducer.java"

Record = tuple[bytes, bytes]


class ClientError(RuntimeError):
    """A client failed (exit status, error output, too few records, time-out)."""

    def __init__(self, message: str, *, stderr: str = "", records: int | None = None) -> None:
        super().__init__(message + (f"\n--- client stderr (tail) ---\n{stderr}" if stderr else ""))
        self.stderr = stderr
        self.records = records


class ClientUnsupported(Exception):
    """This client cannot do what was asked (a mechanism, binary record content, ...)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientSecurity:
    protocol: str = "PLAINTEXT"  # PLAINTEXT | SSL | SASL_PLAINTEXT | SASL_SSL
    ca_file: str | None = None
    check_hostname: bool = True
    mechanism: str | None = None  # SCRAM-SHA-512 | SCRAM-SHA-256 | PLAIN | OAUTHBEARER
    username: str | None = None
    password: str | None = None

    def __post_init__(self) -> None:
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"protocol {self.protocol!r}: one of {PROTOCOLS}")
        if self.protocol.startswith("SASL"):
            if self.mechanism not in MECHANISMS:
                raise ValueError(f"mechanism {self.mechanism!r}: one of {MECHANISMS}")
            if not self.username:
                raise ValueError("SASL needs a username (the token subject for OAUTHBEARER)")

    @property
    def tls(self) -> bool:
        return "SSL" in self.protocol

    @property
    def sasl(self) -> bool:
        return self.protocol.startswith("SASL")


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientJob:
    """One produce or consume run of one client (see :func:`produce` and :func:`consume`).

    A producer sends ``records``; a consumer reads ``topic`` from the beginning until ``count``
    records arrived, in consumer group ``group`` (None: a throw-away group, nothing committed).
    """

    client: str  # one of CLIENTS
    bootstrap: str  # host:port,...
    topic: str
    security: ClientSecurity = ClientSecurity()
    netns: str | None = None  # run the client under `ip netns exec NETNS`
    timeout: float = 90.0  # seconds for the whole run
    extra: Mapping[str, str] = field(default_factory=dict)  # client configuration on top
    records: Sequence[Record] = ()  # produce: (key, value) pairs, each acknowledged (acks=all)
    count: int = 0  # consume: how many records to wait for
    group: str | None = None  # consume: consumer group
    env: Mapping[str, str] = field(default_factory=dict)  # java: environment variables, on top
    classpath: Sequence[str] = ()  # java: more jars after Kafka's (e.g. aws-msk-iam-auth)


# --------------------------------------------------------------------------------------------
# support matrix


def unsupported_reason(client: str, security: ClientSecurity = ClientSecurity()) -> str | None:
    """Why ``client`` cannot run with ``security`` on this machine (None: it can)."""
    if client not in CLIENTS:
        raise ValueError(f"unknown client {client!r}: one of {CLIENTS}")
    if client == "kcat" and shutil.which("kcat") is None:
        return "kcat is not installed (apt-get install kcat)"
    if client == "java" and shutil.which("java") is None:
        return "java is not installed"
    if (
        client == "kcat"
        and security.sasl
        and (security.mechanism or "").startswith("SCRAM")
        and kcat_librdkafka_version() < (2, 6, 1)
        and major(DEFAULT_VERSION) >= 4
        and os.environ.get("KAFKA_TESTBED_KCAT_SCRAM") != "1"
    ):
        version = ".".join(map(str, kcat_librdkafka_version()))
        return (
            f"kcat's librdkafka {version} < 2.6.1 builds a SCRAM client-final message that "
            "Kafka 4.x brokers reject as invalid credentials (librdkafka#4895); "
            "use PLAIN or OAUTHBEARER with kcat (against Kafka 3.x brokers it works: set "
            "KAFKA_TESTBED_KCAT_SCRAM=1)"
        )
    return None


@functools.cache
def kcat_librdkafka_version() -> tuple[int, ...]:
    """The librdkafka version kcat runs with, e.g. (2, 0, 2); (0,) if unknown."""
    try:
        out = subprocess.run(["kcat", "-V"], capture_output=True, text=True, check=False).stdout
    except OSError:
        return (0,)
    match = re.search(r"librdkafka (\d+)\.(\d+)\.(\d+)", out)
    return tuple(int(g) for g in match.groups()) if match else (0,)


def check_supported(client: str, security: ClientSecurity = ClientSecurity()) -> None:
    reason = unsupported_reason(client, security)
    if reason is not None:
        raise ClientUnsupported(f"{client}: {reason}")


def _check_text_records(client: str, records: Sequence[Record]) -> None:
    for key, value in records:
        for part in (key, value):
            if part is None:
                raise ClientUnsupported(f"{client}: null keys/values are not supported")
            if any(c in part for c in (b"\t", b"\n", b"\r")):
                raise ClientUnsupported(f"{client}: keys/values must not contain tab, CR or LF")
            try:
                part.decode()
            except UnicodeDecodeError:
                raise ClientUnsupported(f"{client}: keys/values must be UTF-8 text") from None


# --------------------------------------------------------------------------------------------
# running subprocesses


def _tail(text: str, limit: int = 4000) -> str:
    return text[-limit:]


def _run(
    argv: list[str],
    *,
    stdin: bytes | None,
    timeout: float,
    what: str,
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[bytes]:
    try:
        proc = subprocess.run(
            argv,
            input=stdin if stdin is not None else b"",
            capture_output=True,
            timeout=timeout,
            check=False,
            env=None if env is None else {**os.environ, **env},
        )
    except subprocess.TimeoutExpired as exc:
        err = (exc.stderr or b"").decode(errors="replace")
        raise ClientError(f"{what}: timed out after {timeout:.0f} s", stderr=_tail(err)) from None
    return proc


# --------------------------------------------------------------------------------------------
# Java


def _java_security_props(security: ClientSecurity) -> dict[str, str]:
    props = {"security.protocol": security.protocol}
    if security.tls:
        if security.ca_file:
            props["ssl.truststore.type"] = "PEM"
            props["ssl.truststore.location"] = security.ca_file
        if not security.check_hostname:
            props["ssl.endpoint.identification.algorithm"] = ""
    if security.sasl:
        mech = security.mechanism or ""
        props["sasl.mechanism"] = mech
        user = json.dumps(security.username or "")
        password = json.dumps(security.password or "")
        if mech.startswith("SCRAM"):
            module = "org.apache.kafka.common.security.scram.ScramLoginModule"
            props["sasl.jaas.config"] = f"{module} required username={user} password={password};"
        elif mech == "PLAIN":
            module = "org.apache.kafka.common.security.plain.PlainLoginModule"
            props["sasl.jaas.config"] = f"{module} required username={user} password={password};"
        else:
            module = "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule"
            props["sasl.jaas.config"] = f"{module} required unsecuredLoginStringClaim_sub={user};"
    return props


def _java_cmd(version: str = JAVA_CLIENT_VERSION, classpath: Sequence[str] = ()) -> list[str]:
    options = [
        *tool_jvm_options(),
        "-Dfile.encoding=UTF-8",
        "-Dsun.stdout.encoding=UTF-8",
        "-Dsun.stderr.encoding=UTF-8",
    ]
    return java_command(version, options, tool_log_config(version), classpath)


def _java_produce(job: ClientJob) -> None:
    version = JAVA_CLIENT_VERSION
    v4 = major(version) >= 4
    props = _java_security_props(job.security) | {
        "acks": "all",
        "max.block.ms": str(int(min(job.timeout, 60) * 1000)),
        "delivery.timeout.ms": str(max(31000, int(job.timeout * 1000) - 5000)),
        "linger.ms": "5",
    }
    props |= dict(job.extra)
    # Without a working log binding the error callback is silent: then send synchronously.
    sync = not logging_works(version)
    with tempfile.TemporaryDirectory(prefix="kafka-testbed-java-") as tmp:
        conf = Path(tmp) / "client.properties"
        write_properties(conf, props)
        main = "org.apache.kafka.tools.ConsoleProducer" if v4 else "kafka.tools.ConsoleProducer"
        reader = "--reader-property" if v4 else "--property"
        argv = [
            *netns_prefix(job.netns),
            *_java_cmd(version, job.classpath),
            main,
            "--bootstrap-server",
            job.bootstrap,
            "--topic",
            job.topic,
            "--command-config" if v4 else "--producer.config",
            str(conf),
            "--request-required-acks",
            "all",
            reader,
            "parse.key=true",
            reader,
            "key.separator=\t",
            *(["--sync"] if sync else []),
        ]
        data = b"".join(k + b"\t" + v + b"\n" for k, v in job.records)
        proc = _run(argv, stdin=data, timeout=job.timeout, what="java console producer",
                    env=job.env)
    err = proc.stderr.decode(errors="replace")
    # the producer logs a failed send (ErrorLoggingCallback) at ERROR and still exits 0
    if proc.returncode != 0 or "] ERROR " in err:
        raise ClientError(
            f"java console producer failed (exit {proc.returncode})", stderr=_tail(err)
        )


def _java_consume(job: ClientJob) -> list[Record]:
    version = JAVA_CLIENT_VERSION
    v4 = major(version) >= 4
    count, timeout = job.count, job.timeout
    props = _java_security_props(job.security) | {"auto.offset.reset": "earliest"}
    if job.group is None:
        props["enable.auto.commit"] = "false"
    props |= dict(job.extra)
    fmt = "--formatter-property" if v4 else "--property"
    with tempfile.TemporaryDirectory(prefix="kafka-testbed-java-") as tmp:
        conf = Path(tmp) / "client.properties"
        write_properties(conf, props)
        argv = [
            *netns_prefix(job.netns),
            *_java_cmd(version, job.classpath),
            "org.apache.kafka.tools.consumer.ConsoleConsumer",
            "--bootstrap-server",
            job.bootstrap,
            "--topic",
            job.topic,
            "--command-config" if v4 else "--consumer.config",
            str(conf),
            "--from-beginning",
            "--max-messages",
            str(count),
            "--timeout-ms",
            str(int(max(5.0, timeout - 10) * 1000)),
            fmt,
            "print.key=true",
            fmt,
            "key.separator=\t",
            *(["--group", job.group] if job.group else []),
        ]
        proc = _run(argv, stdin=None, timeout=timeout, what="java console consumer",
                    env=job.env)
    err = proc.stderr.decode(errors="replace")
    out = []
    for line in proc.stdout.decode().splitlines():
        key, sep, value = line.partition("\t")
        if sep:
            out.append((key.encode(), value.encode()))
    if len(out) != count:
        raise ClientError(
            f"java console consumer: expected {count} records, got {len(out)} "
            f"(exit {proc.returncode})",
            stderr=_tail(err),
            records=len(out),
        )
    return out


def tx_producer_classes(version: str = JAVA_CLIENT_VERSION) -> Path:
    """Compile ``TxProducer.java`` (once per source and Kafka version); the class directory."""
    try:
        return compile_java("java", [TX_PRODUCER_SRC], version)
    except JavacError as exc:
        raise ClientError("javac TxProducer.java failed", stderr=str(exc)) from exc


def produce_transactional(
    bootstrap: str,
    topic: str,
    records: Sequence[Record],
    security: ClientSecurity = ClientSecurity(),
    *,
    netns: str | None = None,
    transactional_id: str | None = None,
    commit: bool = True,
    batches: int = 1,
    timeout: float = 90.0,
    extra: Mapping[str, str] | None = None,
) -> None:
    """Java ``KafkaProducer`` with transactions: ``records`` in ``batches`` transactions, each
    committed (or aborted if ``commit`` is false). Raises :class:`ClientError` on failure."""
    check_supported("java", security)
    _check_text_records("java", records)
    version = JAVA_CLIENT_VERSION
    classes = tx_producer_classes(version)
    props = _java_security_props(security) | {
        "max.block.ms": str(int(min(timeout, 60) * 1000)),
        "delivery.timeout.ms": str(max(31000, int(timeout * 1000) - 5000)),
    }
    props |= dict(extra or {})
    txid = transactional_id or f"testbed-tx-{uuid.uuid4().hex[:12]}"
    with tempfile.TemporaryDirectory(prefix="kafka-testbed-java-") as tmp:
        conf = Path(tmp) / "client.properties"
        write_properties(conf, props)
        cmd = _java_cmd(version)
        cmd[-1] = f"{classes}{os.pathsep}{cmd[-1]}"
        argv = [
            *netns_prefix(netns),
            *cmd,
            "TxProducer",
            "--bootstrap",
            bootstrap,
            "--topic",
            topic,
            "--transactional-id",
            txid,
            "--config",
            str(conf),
            "--batches",
            str(batches),
            *([] if commit else ["--abort"]),
        ]
        data = b"".join(k + b"\t" + v + b"\n" for k, v in records)
        proc = _run(argv, stdin=data, timeout=timeout, what="java transactional producer")
    if proc.returncode != 0:
        raise ClientError(
            f"java transactional producer failed (exit {proc.returncode})",
            stderr=_tail(proc.stderr.decode(errors="replace")),
        )


# --------------------------------------------------------------------------------------------
# kcat


def _kcat_security(security: ClientSecurity) -> list[str]:
    conf = {"security.protocol": security.protocol.lower()}
    if security.tls:
        if security.ca_file:
            conf["ssl.ca.location"] = security.ca_file
        conf["ssl.endpoint.identification.algorithm"] = (
            "https" if security.check_hostname else "none"
        )
    if security.sasl:
        conf["sasl.mechanisms"] = security.mechanism or ""
        if security.mechanism == "OAUTHBEARER":
            conf["enable.sasl.oauthbearer.unsecure.jwt"] = "true"
            conf["sasl.oauthbearer.config"] = f"principal={security.username}"
        else:
            conf["sasl.username"] = security.username or ""
            conf["sasl.password"] = security.password or ""
    return _kcat_x(conf)


def _kcat_x(conf: Mapping[str, str]) -> list[str]:
    return [arg for k, v in conf.items() for arg in ("-X", f"{k}={v}")]


def _kcat_produce(job: ClientJob) -> None:
    conf = {"acks": "all", "message.timeout.ms": str(int(max(5.0, job.timeout - 5) * 1000))}
    argv = [
        *netns_prefix(job.netns),
        "kcat",
        "-P",
        "-b",
        job.bootstrap,
        "-t",
        job.topic,
        "-K",
        "\\t",
        *_kcat_security(job.security),
        *_kcat_x(conf | dict(job.extra)),
    ]
    data = b"".join(k + b"\t" + v + b"\n" for k, v in job.records)
    proc = _run(argv, stdin=data, timeout=job.timeout, what="kcat producer")
    err = proc.stderr.decode(errors="replace")
    # librdkafka logs transient connection errors too: only a failed delivery counts
    if proc.returncode != 0 or "Delivery failed" in err:
        raise ClientError(f"kcat producer failed (exit {proc.returncode})", stderr=_tail(err))


def _kcat_consume(job: ClientJob) -> list[Record]:
    count, group, topic = job.count, job.group, job.topic
    mode = ["-G", group] if group else ["-C", "-t", topic]
    argv = [
        *netns_prefix(job.netns),
        "kcat",
        *mode,
        "-b",
        job.bootstrap,
        "-o",
        "beginning",
        "-c",
        str(count),
        "-q",
        "-f",
        "%k\\t%s\\n",
        *_kcat_security(job.security),
        *_kcat_x(job.extra),
        *([topic] if group else []),
    ]
    try:
        proc = subprocess.run(argv, capture_output=True, timeout=job.timeout, check=False)
        stdout, stderr, rc = proc.stdout, proc.stderr, proc.returncode
    except subprocess.TimeoutExpired as exc:
        stdout, stderr, rc = exc.stdout or b"", exc.stderr or b"", None
    out = []
    for line in stdout.decode().splitlines():
        key, sep, value = line.partition("\t")
        if sep:
            out.append((key.encode(), value.encode()))
    if len(out) != count or rc != 0:
        state = "timed out" if rc is None else f"exit {rc}"
        raise ClientError(
            f"kcat consumer: expected {count} records, got {len(out)} ({state})",
            stderr=_tail(stderr.decode(errors="replace")),
            records=len(out),
        )
    return out


# --------------------------------------------------------------------------------------------
# Python clients (confluent-kafka, kafka-python, aiokafka) through testbed/_runner.py

_RUNNER_LIB = {"confluent": "confluent", "kafka-python": "kafka-python", "aiokafka": "aiokafka"}


def _b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode()


def _runner(
    job: ClientJob, action: str, spec: dict[str, object], *, stdin: bytes | None = None
) -> subprocess.CompletedProcess[bytes]:
    argv = [
        *netns_prefix(job.netns),
        sys.executable,
        str(RUNNER),
        _RUNNER_LIB[job.client],
        action,
        json.dumps(spec),
    ]
    return _run(argv, stdin=stdin, timeout=job.timeout + 20, what=f"{job.client} {action}")


def _runner_spec(job: ClientJob) -> dict[str, object]:
    return {
        "bootstrap": job.bootstrap,
        "topic": job.topic,
        "security": asdict(job.security),
        "extra": dict(job.extra),
        "timeout": job.timeout,
    }


def _py_produce(job: ClientJob) -> None:
    data = "".join(json.dumps([_b64(k), _b64(v)]) + "\n" for k, v in job.records).encode()
    proc = _runner(job, "produce", _runner_spec(job), stdin=data)
    if proc.returncode != 0:
        raise ClientError(
            f"{job.client} producer failed (exit {proc.returncode})",
            stderr=_tail(proc.stderr.decode(errors="replace")),
        )


def _py_consume(job: ClientJob) -> list[Record]:
    client, count = job.client, job.count
    spec = _runner_spec(job) | {"count": count, "group": job.group}
    proc = _runner(job, "consume", spec)
    out = []
    for line in proc.stdout.decode().splitlines():
        key, value = json.loads(line)
        out.append(
            (
                base64.b64decode(key) if key is not None else None,
                base64.b64decode(value) if value is not None else None,
            )
        )
    if proc.returncode != 0 or len(out) != count:
        raise ClientError(
            f"{client} consumer: expected {count} records, got {len(out)} (exit {proc.returncode})",
            stderr=_tail(proc.stderr.decode(errors="replace")),
            records=len(out),
        )
    return out  # type: ignore[return-value]


# --------------------------------------------------------------------------------------------
# public interface


def produce(
    client: str,
    bootstrap: str,
    topic: str,
    records: Sequence[tuple[bytes, bytes]],
    security: ClientSecurity = ClientSecurity(),
    *,
    netns: str | None = None,
    timeout: float = 90.0,
    extra: Mapping[str, str] | None = None,
) -> None:
    """Produce ``records`` (key, value) with ``client``; every record acknowledged (acks=all).

    Raises :class:`ClientError` (with the client's stderr tail) on failure and
    :class:`ClientUnsupported` if the client cannot do this.
    """
    job = ClientJob(
        client=client,
        bootstrap=bootstrap,
        topic=topic,
        records=records,
        security=security,
        netns=netns,
        timeout=timeout,
        extra=extra or {},
    )
    produce_job(job)


def consume(
    client: str,
    bootstrap: str,
    topic: str,
    count: int,
    security: ClientSecurity = ClientSecurity(),
    *,
    group: str | None = None,
    netns: str | None = None,
    timeout: float = 90.0,
    extra: Mapping[str, str] | None = None,
) -> list[tuple[bytes, bytes]]:
    """Consume ``topic`` from the beginning until ``count`` records arrived; return them.

    ``group``: consumer group (offsets committed); None: a throw-away group (nothing committed;
    kafka-python and aiokafka then use no group coordinator at all).
    Raises :class:`ClientError` if fewer (or more) records arrive within ``timeout``.
    """
    job = ClientJob(
        client=client,
        bootstrap=bootstrap,
        topic=topic,
        count=count,
        security=security,
        group=group,
        netns=netns,
        timeout=timeout,
        extra=extra or {},
    )
    return consume_job(job)


def produce_job(job: ClientJob) -> None:
    """Run a producer: :func:`produce` with its arguments in one :class:`ClientJob`."""
    check_supported(job.client, job.security)
    if job.client in ("java", "kcat"):  # text-line tools
        _check_text_records(job.client, job.records)
    if job.client == "java":
        _java_produce(job)
    elif job.client == "kcat":
        _kcat_produce(job)
    else:
        _py_produce(job)


def consume_job(job: ClientJob) -> list[Record]:
    """Run a consumer: :func:`consume` with its arguments in one :class:`ClientJob`."""
    check_supported(job.client, job.security)
    if job.client == "java":
        return _java_consume(job)
    if job.client == "kcat":
        return _kcat_consume(job)
    return _py_consume(job)

"""The JVM side of the test bed: Kafka's jars, the class path, JVM options and logging set-up,
Java properties files, the command line that starts a JVM on a Kafka version's class path, and
the test bed's own Java sources compiled once against it (:func:`compile_java`).

Used by :mod:`testbed.cluster` (brokers, ``kafka.tools.StorageTool``), :mod:`testbed.clients`
(console clients, the transactional producer) and :mod:`testbed.msk` (the brokers' IAM classes).

- Jars: ``.cache/kafka/VERSION/libs`` (``make setup``); ``KAFKA_TESTBED_VERSION`` picks the
  default version (:data:`DEFAULT_VERSION`).
- Kafka 4.x logs through slf4j 2: with only slf4j-api 1.7 in the jar set, an slf4j-api 2.x jar
  from ``~/.m2`` goes first on the class path (:func:`java_classpath`, :func:`logging_works`).
- JVM options: ``KAFKA_TESTBED_FAST_JIT=1`` and ``KAFKA_TESTBED_JVM_OPTS`` (brokers).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shlex
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from testbed import CACHE_DIR

DEFAULT_VERSION = os.environ.get("KAFKA_TESTBED_VERSION", "4.4.0")


class JavacError(RuntimeError):
    """javac refused test-bed sources (the message is the tail of its stderr)."""


class ClusterError(RuntimeError):
    """The cluster could not be started, reached or stopped (message has the log tails).

    Defined here because the jar look-up raises it too (Kafka jars missing);
    :mod:`testbed.cluster` re-exports it.
    """


# --------------------------------------------------------------------------------------------
# jars, class path and JVM options


def kafka_libs(version: str) -> Path:
    libs = CACHE_DIR / "kafka" / version / "libs"
    if not any(libs.glob("kafka_2.13-*.jar")):
        raise ClusterError(f"Apache Kafka {version} jars missing in {libs}: run `make setup`")
    return libs


def major(version: str) -> int:
    return int(version.split(".", 1)[0])


def _slf4j2_jar(libs: Path) -> Path | None:
    """An slf4j-api 2.x jar: from the jar set, else from the local Maven repository."""
    jars = sorted(libs.glob("slf4j-api-2.*.jar"))
    if not jars:
        base = Path.home() / ".m2" / "repository" / "org" / "slf4j" / "slf4j-api"
        jars = sorted(base.glob("2.*/slf4j-api-2.*.jar"))
    return jars[-1] if jars else None


def java_classpath(version: str) -> str:
    """The class path for Kafka ``version``.

    Kafka 4.x logs through log4j2's slf4j *2* provider (log4j-slf4j2-impl). With only
    slf4j-api 1.7 on the class path that provider is ignored and nothing at all is logged, so an
    slf4j-api 2.x jar (from the jar set or ~/.m2) goes first. Without one, brokers run without
    logs and :func:`logging_works` is false.
    """
    libs = kafka_libs(version)
    parts = [str(libs / "*")]
    if any(libs.glob("log4j-slf4j2-impl-*.jar")):
        jar = _slf4j2_jar(libs)
        if jar is not None:
            parts.insert(0, str(jar))
    return os.pathsep.join(parts)


def logging_works(version: str) -> bool:
    libs = kafka_libs(version)
    return not any(libs.glob("log4j-slf4j2-impl-*.jar")) or _slf4j2_jar(libs) is not None


def broker_jvm_options(heap_max: str = "512m", heap_min: str = "128m") -> list[str]:
    opts = [
        f"-Xms{heap_min}",
        f"-Xmx{heap_max}",
        "-XX:+UseSerialGC",
        "-XX:+ExitOnOutOfMemoryError",
        "-XX:MaxDirectMemorySize=256m",
        "-Djava.awt.headless=true",
        "-Djava.net.preferIPv4Stack=true",
    ]
    if os.environ.get("KAFKA_TESTBED_FAST_JIT") == "1":
        opts.append("-XX:TieredStopAtLevel=1")
    opts += shlex.split(os.environ.get("KAFKA_TESTBED_JVM_OPTS", ""))
    return opts


def tool_jvm_options() -> list[str]:
    """For short-lived tools (storage format, console clients): quick start matters most."""
    return [
        "-Xms64m",
        "-Xmx256m",
        "-XX:+UseSerialGC",
        "-XX:TieredStopAtLevel=1",
        "-Djava.net.preferIPv4Stack=true",
    ]


# --------------------------------------------------------------------------------------------
# logging configuration of brokers and tools

LOG4J2_BROKER = """\
status = warn
name = kafka-testbed-broker
appender.file.type = File
appender.file.name = FILE
appender.file.fileName = ${{sys:kafka.logs.dir}}/server.log
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = {level}
rootLogger.appenderRef.file.ref = FILE
{loggers}
"""

LOG4J1_BROKER = """\
log4j.rootLogger={level}, file
log4j.appender.file=org.apache.log4j.FileAppender
log4j.appender.file.File=${{kafka.logs.dir}}/server.log
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n
{loggers}
"""

# Quiet, but keep what explains a failing test: authentication failures (Selector, INFO),
# controller and broker life-cycle, group coordinator decisions.
_QUIET_LOGGERS = (
    "org.apache.kafka.common.config.AbstractConfig",  # multi-page config dumps
    "kafka.request.logger",
    "state.change.logger",
    "org.apache.kafka.clients",
    "org.apache.kafka.storage.internals.log",
    "org.apache.kafka.common.utils.AppInfoParser",
    "org.apache.kafka.common.metrics",
    "kafka.log",
    "org.apache.kafka.image.loader",
    "org.apache.kafka.server.metrics",
    "org.apache.kafka.common.telemetry",
)


def broker_log_config(version: str, level: str) -> tuple[str, str]:
    """(file name, content) of the broker logging configuration for ``version``."""
    if major(version) >= 4:
        loggers = "\n".join(
            f"logger.q{i}.name = {name}\nlogger.q{i}.level = WARN"
            for i, name in enumerate(_QUIET_LOGGERS)
        )
        return "log4j2.properties", LOG4J2_BROKER.format(level=level, loggers=loggers)
    loggers = "\n".join(f"log4j.logger.{name}=WARN" for name in _QUIET_LOGGERS)
    return "log4j.properties", LOG4J1_BROKER.format(level=level, loggers=loggers)


TOOLS_LOG4J2 = """\
status = warn
name = kafka-testbed-tools
appender.err.type = Console
appender.err.name = STDERR
appender.err.target = SYSTEM_ERR
appender.err.layout.type = PatternLayout
appender.err.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.err.ref = STDERR
"""

TOOLS_LOG4J1 = """\
log4j.rootLogger=WARN, stderr
log4j.appender.stderr=org.apache.log4j.ConsoleAppender
log4j.appender.stderr.Target=System.err
log4j.appender.stderr.layout=org.apache.log4j.PatternLayout
log4j.appender.stderr.layout.ConversionPattern=[%d] %p %m (%c)%n
"""


def tool_log_config(version: str) -> Path:
    """Logging for Kafka's command-line tools: WARN and above to stderr, stdout stays clean."""
    name, text = (
        ("tools-log4j2.properties", TOOLS_LOG4J2)
        if major(version) >= 4
        else ("tools-log4j.properties", TOOLS_LOG4J1)
    )
    path = CACHE_DIR / "testbed" / name
    if not path.exists() or path.read_text() != text:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{name}.{os.getpid()}.tmp")
        tmp.write_text(text)
        tmp.replace(path)
    return path


def log_config_option(version: str, path: Path) -> str:
    if major(version) >= 4:
        return f"-Dlog4j2.configurationFile={path}"
    return f"-Dlog4j.configuration=file:{path}"


# --------------------------------------------------------------------------------------------
# the java command line


def java_command(version: str, options: Sequence[str], log_config: Path,
                 extra_classpath: Sequence[str] = ()) -> list[str]:
    """``java OPTIONS <log config option> -cp CLASSPATH`` for Kafka ``version``: the start of the
    command line of a JVM; the main class and its arguments follow. ``extra_classpath``: entries
    after Kafka's jars (Kafka's own classes win where both have one)."""
    return [
        "java",
        *options,
        log_config_option(version, log_config),
        "-cp",
        os.pathsep.join([java_classpath(version), *extra_classpath]),
    ]


# --------------------------------------------------------------------------------------------
# test-bed Java sources, compiled once


def compile_java(name: str, sources: Sequence[Path], version: str, *,
                 javac_options: Sequence[str] = (), timeout: float = 180) -> Path:
    """Compile ``sources`` against Kafka ``version``'s jars into
    ``.cache/testbed/NAME/VERSION-DIGEST`` (once per source content, options and version; other
    processes wait on a lock); the class directory. Raises :class:`JavacError`."""
    digest = hashlib.sha256("\0".join([version, *javac_options]).encode())
    for src in sources:
        digest.update(b"\0" + src.name.encode() + b"\0" + src.read_bytes())
    out = CACHE_DIR / "testbed" / name / f"{version}-{digest.hexdigest()[:16]}"
    if out.is_dir():  # only a complete compilation is renamed to ``out``
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    with (out.parent / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if out.is_dir():
            return out
        tmp = out.with_name(out.name + f".{os.getpid()}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        proc = subprocess.run(
            ["javac", *javac_options, "-cp", java_classpath(version), "-d", str(tmp),
             *map(str, sources)], capture_output=True, text=True, check=False, timeout=timeout)
        if proc.returncode != 0:
            shutil.rmtree(tmp, ignore_errors=True)
            raise JavacError(proc.stderr[-4000:])
        tmp.replace(out)
    return out


# --------------------------------------------------------------------------------------------
# Java properties files


def _props_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n")


def write_properties(path: Path, props: Mapping[str, str]) -> None:
    lines = [f"{k}={_props_escape(str(v))}" for k, v in props.items()]
    path.write_text("\n".join(lines) + "\n")

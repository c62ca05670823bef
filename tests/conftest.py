"""Shared fixtures: real Kafka clusters (lazily started, once per run) and network namespaces.

Fixtures:

- ``kafka1`` / ``kafka3``: session-scoped :class:`testbed.cluster.KafkaCluster` of 1 / 3 brokers
  (Kafka ``KAFKA_TESTBED_VERSION``, default 4.4.0) with PLAINTEXT, SSL and SASL_SSL listeners;
  SASL_SSL offers SCRAM-SHA-512, SCRAM-SHA-256, PLAIN and OAUTHBEARER (unsecured tokens).
  Started on first use only.
- ``netns_topology``: a fresh :class:`testbed.netns.Topology` (client / edge / cluster
  namespaces), removed after the test; skips when namespaces are unavailable (not root, no ``ip``).

Clean-up: every broker is stopped at the end of the run, on SIGTERM / SIGHUP and at exit; brokers
also die with the test process (PR_SET_PDEATHSIG). At the start of a run, brokers and ``ke-``
namespaces left by an earlier run that crashed are removed (see :func:`testbed.procs.sweep_stale`
and :func:`testbed.netns.sweep_stale`); those of other live runs are left alone.

A failing test that used a cluster gets the broker log lines written during the test (tail)
as report sections.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

# Property tests are judged by what they find, not how fast: on a shared 2-core machine, with
# brokers running beside them, an example may take longer than Hypothesis's default 200 ms
# deadline (or its data generation trip the too_slow check) without anything being wrong.
settings.register_profile("kafka-edge", deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("kafka-edge")

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # also set by [tool.pytest.ini_options] pythonpath
    sys.path.insert(0, str(ROOT))

from testbed import netns, procs  # noqa: E402
from testbed.cluster import KafkaCluster, active_clusters, stop_all  # noqa: E402

CLUSTER_SECURITY = ("PLAINTEXT", "SSL", "SASL_SSL")
CLUSTER_MECHANISMS = ("SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN", "OAUTHBEARER")
LOG_TAIL_LINES = 80
LOG_TAIL_QUIET = 15

_started: dict[str, KafkaCluster] = {}
_swept: dict[str, list[Any]] = {"brokers": [], "namespaces": []}
_log_offsets = pytest.StashKey[dict[Path, int]]()
_previous_handlers: dict[int, Any] = {}


# --------------------------------------------------------------------------------------------
# session life cycle


def _cleanup() -> None:
    stop_all(timeout=10.0)
    if netns.unavailable_reason() is None:
        for name in netns.list_namespaces(f"{netns.PREFIX}{os.getpid()}-"):
            netns.delete_namespace(name)


def _on_signal(signum: int, frame: FrameType | None) -> None:
    _cleanup()
    previous = _previous_handlers.get(signum, signal.SIG_DFL)
    if callable(previous):
        previous(signum, frame)
    else:
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)


def pytest_sessionstart(session: pytest.Session) -> None:
    _swept["brokers"] = procs.sweep_stale()
    _swept["namespaces"] = netns.sweep_stale()
    for sig in (signal.SIGTERM, signal.SIGHUP):
        _previous_handlers[sig] = signal.signal(sig, _on_signal)


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _cleanup()
    for sig, handler in _previous_handlers.items():
        signal.signal(sig, handler)
    _previous_handlers.clear()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    tr = terminalreporter
    if _swept["brokers"] or _swept["namespaces"]:
        tr.write_line(
            f"testbed: removed {len(_swept['brokers'])} broker(s) and "
            f"{len(_swept['namespaces'])} namespace(s) left by an earlier run"
        )
    for name, cluster in _started.items():
        listeners = ", ".join(cluster.listeners)
        tr.write_line(
            f"{name} started in {cluster.startup_seconds:.1f} s "
            f"({len(cluster.node_ids)} broker(s), Kafka {cluster.kafka_version}; {listeners})"
        )


# --------------------------------------------------------------------------------------------
# clusters


def _start(name: str, brokers: int, factory: pytest.TempPathFactory) -> Iterator[KafkaCluster]:
    cluster = KafkaCluster.start(
        factory.mktemp(name, numbered=True),
        brokers=brokers,
        security=CLUSTER_SECURITY,
        mechanisms=CLUSTER_MECHANISMS,
    )
    _started[name] = cluster
    try:
        yield cluster
    finally:
        cluster.stop(timeout=20.0)


@pytest.fixture(scope="session")
def kafka1(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaCluster]:
    """A 1-broker cluster with PLAINTEXT, SSL and SASL_SSL listeners (started on first use)."""
    yield from _start("kafka1", 1, tmp_path_factory)


@pytest.fixture(scope="session")
def kafka3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaCluster]:
    """A 3-broker cluster with PLAINTEXT, SSL and SASL_SSL listeners (started on first use)."""
    yield from _start("kafka3", 3, tmp_path_factory)


@pytest.fixture
def netns_topology(request: pytest.FixtureRequest) -> Iterator[netns.Topology]:
    """Client / edge / cluster network namespaces, removed after the test."""
    reason = netns.unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    with netns.topology(request.node.name[:12]) as topo:
        yield topo


# --------------------------------------------------------------------------------------------
# broker logs in failure reports


def _log_sizes() -> dict[Path, int]:
    sizes = {}
    for cluster in active_clusters():
        for path in cluster.log_files().values():
            try:
                sizes[path] = path.stat().st_size
            except OSError:
                sizes[path] = 0
    return sizes


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    item.stash[_log_offsets] = _log_sizes()


def _read_from(path: Path, offset: int, lines: int) -> str:
    try:
        with path.open("rb") as f:
            size = f.seek(0, os.SEEK_END)
            start = max(offset, size - 256 * 1024)
            f.seek(start)
            text = f.read().decode(errors="replace")
    except OSError as exc:
        return f"(cannot read {path}: {exc})"
    chunk = text.splitlines()
    if start > offset:
        chunk = chunk[1:]
    note = "" if len(chunk) <= lines else f"... ({len(chunk) - lines} earlier lines in {path})\n"
    return note + "\n".join(chunk[-lines:])


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.failed and report.when in ("setup", "call"):
        offsets = item.stash.get(_log_offsets, {})
        used = getattr(item, "funcargs", {}).values()
        for cluster in active_clusters():
            files = cluster.log_files()
            started_now = not any(p in offsets for p in files.values())
            if not started_now and not any(v is cluster for v in used):
                continue
            for node_id, path in files.items():
                what = "during this test"
                text = _read_from(path, offsets.get(path, 0), LOG_TAIL_LINES)
                if not text.strip():
                    what = "nothing new during this test; last lines"
                    text = _read_from(path, 0, LOG_TAIL_QUIET)
                report.sections.append((f"broker {node_id} log ({cluster.dir.name}, {what})", text))
    return report

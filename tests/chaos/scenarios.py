"""Fault scenarios: an idempotent producer (acks=all) writes numbered records through
kafka-edge while one fault happens; a consumer group reads the topic back through kafka-edge;
counted: records lost, duplicated, out of order per partition, and how long acknowledgements
stalled after the fault (the recovery time).

The scenarios themselves: tests/chaos/cases.py, run by tests/e2e/test_faults.py with 10,000
records each in ``make test`` and 100,000 in ``make chaos`` (:func:`long_suite`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tests.e2e.producing import PRODUCER, PRODUCER_CONFIG, end_offset

IDEMPOTENT = {**PRODUCER_CONFIG, "enable.idempotence": True}
REPO = Path(__file__).resolve().parents[2]


def long_suite() -> bool:
    """``make chaos`` (KAFKA_EDGE_CHAOS=1): the full sizes; otherwise ``make test``'s subset."""
    return os.environ.get("KAFKA_EDGE_CHAOS") == "1"


@dataclass(frozen=True, slots=True, kw_only=True)
class Outcome:
    name: str
    records: int  # records the producer was asked to write
    acked: int  # acknowledged once (the producer's count)
    read: int  # records the consumer group read back
    lost: int  # acknowledged but not read
    duplicated: int  # read more than once
    out_of_order: int  # partitions whose record numbers do not increase
    recovery_s: float  # longest stall of acknowledgements from the fault on
    fault_s: float  # how long the fault itself took (kill and restart, the 10 s cut, ...)
    errors: list[str]


def produce_with_fault(bootstrap: str, topic: str, records: int, rate: int,
                       fault: Callable[[], None], *, fault_at: float = 0.3,
                       producer_config: dict[str, Any] | None = None,
                       client_config: dict[str, Any] | None = None,
                       timeout_s: float = 180.0, prefix: Sequence[str] = (),
                       ) -> tuple[dict[str, Any], float, float]:
    """Run PRODUCER (``prefix``: in front of its command line, such as ``ip netns exec NS``);
    when ``fault_at`` of the records have been sent, run ``fault`` (in a thread). Returns the
    producer's summary, the recovery time and the fault's duration."""
    spec = {"bootstrap": bootstrap, "topic": topic, "count": records, "rate": rate,
            "config": {**(producer_config or IDEMPOTENT), **(client_config or {})},
            "timeout": timeout_s}
    proc = subprocess.Popen([*prefix, sys.executable, "-c", PRODUCER, json.dumps(spec)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    progress: list[tuple[float, int]] = []
    fault_started: float | None = None
    fault_took: list[float] = []
    fault_error: list[BaseException] = []

    def run_fault() -> None:
        started = time.monotonic()
        try:
            fault()
        except BaseException as exc:  # reported by the caller
            fault_error.append(exc)
        fault_took.append(time.monotonic() - started)

    thread = threading.Thread(target=run_fault, daemon=True)
    result: dict[str, Any] = {}
    try:
        for line in proc.stdout:
            word, _, rest = line.partition(" ")
            if word == "result":
                result = json.loads(rest)
                continue
            if word != "progress":
                continue
            sent, acked = map(int, rest.split())
            progress.append((time.monotonic(), acked))
            # by records sent, not acknowledged: the fault lands mid-run however slowly the
            # first acknowledgements come (a cluster just disturbed by the previous scenario)
            if fault_started is None and sent >= fault_at * records:
                assert sent < records, "the producer finished before the fault: slow it down"
                fault_started = time.monotonic()
                thread.start()
        proc.wait(60)
        thread.join(120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        stderr = proc.stderr.read() if proc.stderr is not None else ""
        if proc.stdout is not None:
            proc.stdout.close()
        if proc.stderr is not None:
            proc.stderr.close()
    if fault_error:
        raise fault_error[0]
    assert fault_started is not None, "the fault never ran"
    assert result, f"the producer gave no result: {stderr[-3000:]}"
    return result, _longest_stall(progress, fault_started), fault_took[0] if fault_took else 0.0


def _longest_stall(progress: list[tuple[float, int]], since: float) -> float:
    """The longest time, from ``since`` on, during which the acknowledged count did not move."""
    longest = 0.0
    last_move = since
    last = None
    for at, acked in progress:
        if at < since:
            last = acked
            continue
        if last is None or acked > last:
            longest = max(longest, at - last_move)
            last_move = at
        last = acked
    return round(longest, 2)


READ_BACK = """
import json, sys
from tests.chaos.scenarios import read_back
print(json.dumps(read_back(*json.loads(sys.argv[1]))))
"""


def read_back(bootstrap: str, topic: str, partitions: int,
              client_config: dict[str, Any] | None = None,
              timeout_s: float = 120.0, prefix: Sequence[str] = ()) -> dict[int, list[int]]:
    """Every record of ``topic`` read by a new consumer group through ``bootstrap``: the record
    numbers per partition, in the order read. With ``prefix`` (``ip netns exec NS``), read by
    a process started with it."""
    if prefix:
        args = json.dumps([bootstrap, topic, partitions, client_config, timeout_s])
        proc = subprocess.run([*prefix, sys.executable, "-c", READ_BACK, args],
                              capture_output=True, text=True, timeout=timeout_s + 60,
                              check=False, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
        assert proc.returncode == 0, proc.stderr[-3000:]
        return {int(p): values for p, values in json.loads(proc.stdout).items()}
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"chaos-{uuid.uuid4().hex}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False,
                         **(client_config or {})})
    try:
        deadline = time.monotonic() + timeout_s
        ends = {p: end_offset(consumer, TopicPartition(topic, p), deadline)
                for p in range(partitions)}
        consumer.subscribe([topic])
        out: dict[int, list[int]] = {p: [] for p in range(partitions)}
        positions = dict.fromkeys(range(partitions), 0)
        while any(positions[p] < ends[p] for p in ends) and time.monotonic() < deadline:
            for msg in consumer.consume(2000, timeout=0.5):
                if msg.error() is not None:
                    raise AssertionError(f"consume error: {msg.error()}")
                partition, offset, value = msg.partition(), msg.offset(), msg.value()
                assert partition is not None and offset is not None and value is not None
                out[partition].append(int(value[:8]))
                positions[partition] = offset + 1
        assert all(positions[p] >= ends[p] for p in ends), f"not read to the end: {ends}"
        return out
    finally:
        consumer.close()


def count(name: str, records: int, result: dict[str, Any], per_partition: dict[int, list[int]],
          recovery_s: float, fault_s: float) -> Outcome:
    numbers = [n for values in per_partition.values() for n in values]
    seen = Counter(numbers)
    acked_never_read = set(range(records)) - set(seen)
    return Outcome(
        name=name, records=records, acked=int(result["acked"]), read=len(numbers),
        lost=len(acked_never_read),
        duplicated=sum(c - 1 for c in seen.values() if c > 1),
        out_of_order=sum(1 for values in per_partition.values() if values != sorted(values)),
        recovery_s=recovery_s, fault_s=round(fault_s, 2),
        errors=list(result.get("errors") or []))


def check(outcome: Outcome, *, ordered: bool = True) -> None:
    """Nothing lost, nothing twice, every record acknowledged once, and (``ordered``: an
    idempotent producer) order kept per partition. (Without idempotence, Kafka itself may
    reorder a retried batch; the count is recorded all the same.)"""
    record(outcome)
    assert outcome.errors == [], outcome
    assert outcome.acked == outcome.records, outcome
    assert outcome.lost == 0 and outcome.duplicated == 0, outcome
    if ordered:
        assert outcome.out_of_order == 0, outcome


def record(outcome: Outcome) -> None:
    """With KAFKA_EDGE_RESULTS_DIR set, keep the outcome for reliability/collect.py."""
    out = os.environ.get("KAFKA_EDGE_RESULTS_DIR")
    if not out:
        return
    folder = Path(out) / "scenarios"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{outcome.name}.json").write_text(json.dumps(asdict(outcome), indent=2))


def record_memory(name: str, figures: dict[str, Any]) -> None:
    """With KAFKA_EDGE_RESULTS_DIR set, keep memory figures (``summary``: one line of text)."""
    out = os.environ.get("KAFKA_EDGE_RESULTS_DIR")
    if not out:
        return
    folder = Path(out) / "memory"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.json").write_text(json.dumps(figures, indent=2))


def rss_mib(pid: int) -> float:
    """Process ``pid``'s resident set (VmRSS) in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for {pid}")

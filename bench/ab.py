"""A/B measurement of kafka-edge builds: the tool behind "what each change bought".

``make bench`` compares kafka-edge with other paths; this compares kafka-edge with itself. It
starts one 3-broker cluster, then runs the same workload through each build in alternating
order (A B B A A B ...), so drift on a shared machine falls on both, and reports per build the
median throughput and the proxy's own CPU (user and system, from /proc) per GB relayed.

A build is ``NAME=REV``: a git revision (checked out with ``git worktree`` under
bench/work/ab/) or ``NAME=.`` for the working tree. Example::

    bench/ab.py --build before=HEAD~1 --build after=. --variant plain --rounds 4

Workloads: ``producer`` (ProducerPerformance at full speed, 1 KiB records, acks=all) and
``consumer`` (ConsumerPerformance reading what the producer wrote) and ``latency``
(bench/LatencyProbe.java at ``--rate`` records/s for 15 s: p50/p99/p99.9 to the microsecond).
``--profile`` records a profile of each build's first two runs (``perf`` or ``py-spy``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from brokers import Cluster, ProxyTls, Topics, make_proxy_tls, start_cluster
from measure import (
    CLK_TCK,
    KafkaTools,
    consumer_perf,
    latency_probe,
    producer_perf,
    wait_ready,
)
from paths import HOST, PortBlocks, ProxyProcess
from peers import BENCH_DIR, REPO_ROOT

PARTITIONS = 6
REPLICATION = 3
RECORD_SIZE = 1024


@dataclass
class Build:
    name: str
    rev: str
    src: Path  # the directory holding the kafka_edge package
    runs: list[dict[str, float]] = field(default_factory=list)


def checkout(name: str, rev: str, root: Path) -> Build:
    if rev == ".":
        return Build(name, "working tree", REPO_ROOT / "src")
    target = root / name
    if target.exists():
        subprocess.run(["git", "worktree", "remove", "--force", str(target)], cwd=REPO_ROOT,
                       check=False, capture_output=True)
        shutil.rmtree(target, ignore_errors=True)
    subprocess.run(["git", "worktree", "add", "--detach", str(target), rev], cwd=REPO_ROOT,
                   check=True, capture_output=True)
    sha = subprocess.run(["git", "rev-parse", "--short", rev], cwd=REPO_ROOT, check=True,
                         capture_output=True, text=True).stdout.strip()
    return Build(name, f"{rev} ({sha})", target / "src")


def cpu_ticks(pid: int) -> tuple[int, int]:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]), int(fields[12])  # utime, stime


def start_edge(build: Build, cluster: Cluster, variant: str, base: int, work: Path,
               tls_files: tuple[str, str] | None, log_level: str) -> ProxyProcess:
    listener = "SSL" if variant == "tls" else "PLAINTEXT"
    upstream: dict[str, object] = {"bootstrap_servers": cluster.bootstrap(listener).split(",")}
    nodes = cluster.node_ids
    routing: dict[str, object] = {
        "bind_host": HOST, "bootstrap_port": base, "broker_port_base": base + min(nodes),
        "node_id_min": min(nodes), "node_id_max": max(nodes), "advertised_host": HOST,
    }
    if variant == "tls":
        assert tls_files is not None
        upstream["tls"] = {"ca_file": cluster.ca_file, "verify_hostname": True}
        routing["tls"] = {"certificates": [{"cert_file": tls_files[0],
                                            "key_file": tls_files[1]}]}
    config = {"clusters": [{"name": "ab", "upstream": upstream, "port_routing": routing}],
              "observability": {"http_bind": f"{HOST}:{base + 7}", "log_level": log_level}}
    path = work / f"{build.name}-{variant}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    env = {**os.environ, "PYTHONPATH": str(build.src), "PYTHONUNBUFFERED": "1"}
    argv = [sys.executable, "-c", "from kafka_edge.cli import main; main()",
            "run", "--config", str(path)]
    return ProxyProcess(build.name, argv, work / f"{build.name}.log", env=env)


@dataclass
class Setup:
    """What every run of every build shares."""

    args: argparse.Namespace
    workloads: list[str]
    work: Path
    cluster: Cluster
    ports: PortBlocks
    tls: ProxyTls | None
    client: dict[str, str]  # the perf clients' security settings
    tools: KafkaTools
    topics: Topics

    @property
    def tls_files(self) -> tuple[str, str] | None:
        return (str(self.tls.cert_file), str(self.tls.key_file)) if self.tls else None


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", action="append", required=True, metavar="NAME=REV")
    ap.add_argument("--variant", choices=("plain", "tls"), default="plain")
    ap.add_argument("--workload", default="producer,consumer")
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--rate", type=float, default=3300.0,
                    help="records/s of the latency workload (make bench: half of direct)")
    ap.add_argument("--records", type=int, default=300_000)
    ap.add_argument("--profile", choices=("perf", "py-spy"),
                    help="profile each build's first two runs (perf record -g, or py-spy "
                         "--native in collapsed-stack format)")
    ap.add_argument("--log-level", default="warning", help="kafka-edge's log level")
    ap.add_argument("--nice", action="append", default=[], metavar="NAME=N",
                    help="run build NAME at scheduling priority N (e.g. -10: does the proxy "
                         "lose time waiting for a CPU?)")
    ap.add_argument("--out", type=Path, default=BENCH_DIR / "work" / "ab" / "result.json")
    return ap.parse_args()


def main() -> int:
    args = parse_args()
    workloads = args.workload.split(",")

    root = BENCH_DIR / "work" / "ab"
    root.mkdir(parents=True, exist_ok=True)
    work = root / "run"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    builds = [checkout(*spec.split("=", 1), root) for spec in args.build]

    cluster = start_cluster(REPO_ROOT / "scripts" / "kafka-local", work / "cluster", brokers=3,
                            heap="2g", advertise={}, log=work / "cluster.log")
    tls = make_proxy_tls(work / "tls") if args.variant == "tls" else None
    client = ({"security.protocol": "SSL", "ssl.truststore.type": "PEM",
               "ssl.truststore.location": str(tls.ca_file)} if tls else {})
    setup = Setup(args, workloads, work, cluster, PortBlocks(), tls, client,
                  KafkaTools(REPO_ROOT / ".cache" / "kafka" / cluster.kafka_version / "libs",
                             work),
                  Topics(cluster.bootstrap("PLAINTEXT")))
    try:
        warm_up(setup)
        for r in range(args.rounds):
            order = builds if r % 2 == 0 else builds[::-1]
            for build in order:
                measure_build(setup, build, r)
    finally:
        setup.topics.close()
        cluster.down()
        for b in builds:
            if b.rev != "working tree":
                subprocess.run(["git", "worktree", "remove", "--force", str(b.src.parent)],
                               cwd=REPO_ROOT, check=False, capture_output=True)
    report(args, builds)
    return 0


def warm_up(setup: Setup) -> None:
    """The brokers' first minute is slow (JIT, page cache): warm them up directly, unmeasured."""
    bootstrap = setup.cluster.bootstrap("PLAINTEXT")
    setup.topics.create("ab-warmup", PARTITIONS, REPLICATION)
    producer_perf(setup.tools, "ab-warmup", bootstrap=bootstrap,
                  topic="ab-warmup", records=100_000, record_size=RECORD_SIZE,
                  throughput=-1, client={}, timeout=600)
    setup.topics.delete("ab-warmup")


def measure_build(setup: Setup, build: Build, r: int) -> None:
    """Round ``r`` of ``build``: start it, run every workload through it, record the run."""
    args, topics, cluster = setup.args, setup.topics, setup.cluster
    base = setup.ports.block()
    proc = start_edge(build, cluster, args.variant, base, setup.work, setup.tls_files,
                      args.log_level)
    niceness = dict(spec.split("=", 1) for spec in args.nice)
    if build.name in niceness:
        os.setpriority(os.PRIO_PROCESS, proc.popen.pid, int(niceness[build.name]))
    try:
        wait_ready(HOST, base, ca_file=str(setup.tls.ca_file) if setup.tls else None,
                   started=proc.started, timeout=60, alive=proc.alive,
                   brokers=len(cluster.node_ids))
        topic = f"ab-{build.name}-{r}"
        topics.create(topic, PARTITIONS, REPLICATION)
        if "latency" in setup.workloads:
            topics.create(topic + "-l", PARTITIONS, REPLICATION)
        perf = start_profiler(setup, proc.popen.pid, build, r) if args.profile and r < 2 else None
        run: dict[str, float] = {}
        for wl in setup.workloads:
            run.update(measure_workload(setup, wl, proc, build, r, f"{HOST}:{base}", topic))
        run["peak_rss_kib"] = proc.tree.peak_rss_kib()
        if perf is not None:
            perf.send_signal(signal.SIGINT)
            perf.wait(timeout=60)
        topics.delete(topic, *([topic + "-l"] if "latency" in setup.workloads else []))
        build.runs.append(run)
        print(f"[ab] round {r} {build.name}: {run}", flush=True)
    finally:
        proc.stop()
        time.sleep(1)


def start_profiler(setup: Setup, pid: int, build: Build, r: int) -> subprocess.Popen[bytes]:
    work = setup.work
    argv = (["perf", "record", "-g", "-F", "499", "-p", str(pid),
             "-o", str(work / f"perf-{build.name}-{r}.data")]
            if setup.args.profile == "perf" else
            [str(Path(sys.executable).parent / "py-spy"), "record",
             "--native", "-r", "250", "-f", "raw", "-p", str(pid),
             "-o", str(work / f"py-spy-{build.name}-{r}.txt")])
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def measure_workload(setup: Setup, wl: str, proc: ProxyProcess, build: Build, r: int,
                     bootstrap: str, topic: str) -> dict[str, float]:
    """One workload through the proxy: its result, and the proxy's CPU per GB relayed."""
    args, tools, client = setup.args, setup.tools, setup.client
    if wl == "latency":
        lat = latency_probe(tools, f"ab-{build.name}-{r}-l",
                            bootstrap=bootstrap, topic=topic + "-l",
                            records=int(args.rate * 15),
                            record_size=RECORD_SIZE, rate=args.rate,
                            client=client, timeout=600)
        return {"p50_ms": lat.p50_ms, "p99_ms": lat.p99_ms, "p999_ms": lat.p999_ms}
    run: dict[str, float] = {}
    u0, s0 = cpu_ticks(proc.popen.pid)
    if wl == "producer":
        res = producer_perf(tools, f"ab-{build.name}-{r}-p",
                            bootstrap=bootstrap, topic=topic,
                            records=args.records,
                            record_size=RECORD_SIZE, throughput=-1,
                            client=client, timeout=600)
        run["producer_mb_s"] = res.mb_s
        moved = args.records * RECORD_SIZE
    else:
        cres = consumer_perf(tools, f"ab-{build.name}-{r}-c",
                             bootstrap=bootstrap, topic=topic,
                             records=args.records, client=client,
                             timeout=600)
        run["consumer_mb_s"] = cres.mb_s
        moved = cres.records * RECORD_SIZE
    u1, s1 = cpu_ticks(proc.popen.pid)
    gb = moved / 1e9
    run[f"{wl}_user_s_per_gb"] = round((u1 - u0) / CLK_TCK / gb, 3)
    run[f"{wl}_sys_s_per_gb"] = round((s1 - s0) / CLK_TCK / gb, 3)
    run[f"{wl}_cpu_s_per_gb"] = round((u1 - u0 + s1 - s0) / CLK_TCK / gb, 3)
    return run


def report(args: argparse.Namespace, builds: list[Build]) -> None:
    """Write the result file and print each build's medians (relative to the first build's)."""
    summary: dict[str, dict[str, object]] = {}
    for b in builds:
        keys = sorted({k for run in b.runs for k in run})
        summary[b.name] = {"rev": b.rev, "runs": b.runs,
                           "median": {k: round(statistics.median(run[k] for run in b.runs
                                                                 if k in run), 3)
                                      for k in keys}}
    args.out.write_text(json.dumps({"variant": args.variant, "records": args.records,
                                    "builds": summary}, indent=2))
    first = builds[0].name
    print(f"\n[ab] medians over {args.rounds} rounds, {args.variant}, {args.records} records")
    for b in builds:
        med = summary[b.name]["median"]
        assert isinstance(med, dict)
        base = summary[first]["median"]
        assert isinstance(base, dict)
        cells = [f"{k}={v}" + (f" ({v / base[k]:.2f}x)" if b.name != first and base.get(k)
                               else "") for k, v in med.items()]
        print(f"  {b.name:10} " + "  ".join(cells))


if __name__ == "__main__":
    sys.exit(main())

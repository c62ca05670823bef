"""``make bench``: kafka-edge against direct access and other proxies, on one local Kafka cluster.

One invocation starts one 3-broker cluster (scripts/kafka-local), warms it up with an
unmeasured direct run, calibrates (a direct run per variant sizes the runs and sets the latency
test's rate at half the direct saturation), then measures every path
(direct, kafka-edge, haproxy, kroxylicious, kafka-proxy) in both variants (plain, tls) in
interleaved rounds: each round runs every path once, in a rotated order, so slow drift on a
shared machine spreads over all paths. Per path, variant and round:

1. start the proxy; ready time = until a Metadata round trip through it lists every broker;
2. ProducerPerformance at full speed (1 KiB records, acks=all), then ConsumerPerformance
   reading them back; the proxy's CPU time over both, per GB of record payload relayed;
3. bench/LatencyProbe.java (the Java producer, acks=all) at a fixed rate, half the direct
   saturation: latency percentiles in microseconds;
4. peak RSS (VmHWM), then N idle connections (ApiVersions done) and the RSS growth per one.

Results: medians over rounds in bench/results/latest.json, docs/performance.md and
docs/performance.png (bench/report.py). ``--quick``: one round of short runs (a smoke test).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paths as P
import report
from brokers import (
    HAPROXY_PLAIN,
    HAPROXY_TLS,
    Cluster,
    ClusterError,
    Topics,
    launcher_options,
    make_proxy_tls,
    start_cluster,
)
from measure import (
    KafkaTools,
    MeasureError,
    consumer_perf,
    hold_idle_connections,
    latency_probe,
    producer_perf,
    wait_ready,
)
from peers import BENCH_DIR, REPO_ROOT, Peer, fetch_all

RECORD_SIZE = 1024
PARTITIONS = 6
REPLICATION = 3
BROKERS = 3
FIGURES = ("producer_mb_s", "producer_rec_s", "consumer_mb_s", "p50_ms", "p99_ms", "p999_ms",
           "cpu_s_per_gb", "peak_rss_kib", "idle_rss_kib_per_conn", "ready_s")
PROXY_ONLY = ("cpu_s_per_gb", "peak_rss_kib", "idle_rss_kib_per_conn", "ready_s")
NO_PROXY = "direct has no proxy process"


def log(message: str) -> None:
    stamp = time.strftime("%H:%M:%S")
    print(f"[bench {stamp}] {message}", flush=True)


# --------------------------------------------------------------------------------------------
# one path, one variant, one round


class Figures:
    """Figure values of one run; a figure that could not be measured has a reason instead."""

    def __init__(self) -> None:
        self.values: dict[str, float | None] = dict.fromkeys(FIGURES)
        self.reasons: dict[str, str] = {}
        self.extra: dict[str, Any] = {}

    def fail(self, names: tuple[str, ...] | list[str], reason: str) -> None:
        for name in names:
            if self.values.get(name) is None and name not in self.reasons:
                self.reasons[name] = reason

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in FIGURES:
            out[name] = self.values[name]
            if self.values[name] is None:
                out[f"{name}_reason"] = self.reasons.get(name, "not measured")
        return out | self.extra


class Bench:
    def __init__(self, args: argparse.Namespace, ctx: P.Context, tools: KafkaTools,
                 topics: Topics) -> None:
        self.args = args
        self.ctx = ctx
        self.tools = tools
        self.topics = topics
        self.records: int = 0
        self.latency_rate: dict[str, float] = {}
        self.idle_connections = min(args.idle_connections, ctx.max_connections)

    @property
    def timeout(self) -> float:
        """Longest a perf tool may run: paths 10x slower than direct are reported as such."""
        return 10 * float(self.args.seconds) + 60

    def warm_up(self) -> None:
        """An unmeasured direct run first: freshly started brokers run several times slower
        for their first minute (JIT, page cache), which would size the runs and the latency
        test's rate from a cold cluster instead of its real saturation."""
        endpoint = P.Direct(self.ctx).start("plain", self.ctx.work / "warm-up.log")[1]
        topic = "bench-warm-up"
        self.topics.create(topic, PARTITIONS, REPLICATION)
        try:
            result = producer_perf(
                self.tools, "warm-up", bootstrap=endpoint.bootstrap, topic=topic,
                records=50_000 if self.args.quick else 400_000, record_size=RECORD_SIZE,
                throughput=-1, client=endpoint.client_properties(), timeout=self.timeout)
        finally:
            self.topics.delete(topic)
        log(f"warm-up: direct {result.rec_s:,.0f} rec/s (not measured)")

    def calibrate(self, variant: str) -> None:
        """A short direct run: sizes the runs and sets the latency test's fixed rate."""
        endpoint = P.Direct(self.ctx).start(variant, self.ctx.work / "calibrate.log")[1]
        topic = f"bench-calibrate-{variant}"
        self.topics.create(topic, PARTITIONS, REPLICATION)
        # long enough for the producer JVM to reach its steady state (the tool leaves the first
        # fifth out); 100,000 records measured about half of what the full runs then reached.
        # The better of two runs: a cluster still warming up gave 24,600 rec/s in the first of
        # them where the measured direct runs then reached 35,000.
        probe = 30_000 if self.args.quick else 400_000
        result = None
        try:
            for attempt in range(1 if self.args.quick else 2):
                run = producer_perf(
                    self.tools, f"calibrate-{variant}-{attempt}", bootstrap=endpoint.bootstrap,
                    topic=topic, records=probe, record_size=RECORD_SIZE, throughput=-1,
                    client=endpoint.client_properties(), timeout=self.timeout)
                if result is None or run.rec_s > result.rec_s:
                    result = run
        finally:
            self.topics.delete(topic)
        assert result is not None
        if variant == self.args.variants[0]:
            self.records = int(min(max(result.rec_s * self.args.seconds, 10_000), 20_000_000))
        self.latency_rate[variant] = max(100.0, round(result.rec_s / 2, -2))
        log(f"calibration {variant}: direct {result.rec_s:,.0f} rec/s ({result.mb_s:.1f} MB/s) "
            f"-> {self.records:,} records per run, latency test at "
            f"{self.latency_rate[variant]:,.0f} rec/s")

    def run(self, path: P.ClientPath, variant: str, round_no: int) -> dict[str, Any]:
        fig = Figures()
        tag = f"{path.name}-{variant}-r{round_no}"
        if path.name == "direct":
            fig.fail(PROXY_ONLY, NO_PROXY)
        reason = path.unavailable()
        if reason:
            fig.fail(FIGURES, reason)
            return fig.as_dict()
        logfile = self.ctx.work / f"{tag}.log"
        try:
            proc, endpoint = path.start(variant, logfile)
        except Exception as exc:
            fig.fail(FIGURES, f"could not start: {exc}")
            return fig.as_dict()
        topic, lat_topic = f"bench-{tag}", f"bench-{tag}-lat"
        try:
            self._measure(fig, tag, proc, endpoint, variant=variant, topic=topic,
                          lat_topic=lat_topic)
        finally:
            if proc is not None:
                proc.stop()
            self.topics.delete(topic, lat_topic)
        return fig.as_dict()

    def _measure(self, fig: Figures, tag: str, proc: P.ProxyProcess | None,
                 endpoint: P.Endpoint, *, variant: str, topic: str, lat_topic: str) -> None:
        host, port = endpoint.first
        client = endpoint.client_properties()
        step = _stepper(fig, tag, proc)

        def ready() -> None:
            started = proc.started if proc else time.monotonic()
            alive = proc.alive if proc else (lambda: True)
            seconds = wait_ready(host, port, ca_file=endpoint.ca_file, started=started,
                                 timeout=120.0, alive=alive, brokers=BROKERS)
            if proc is not None:
                fig.values["ready_s"] = round(seconds, 3)

        if not step(FIGURES, "ready", ready):
            return
        self.topics.create(topic, PARTITIONS, REPLICATION)
        self.topics.create(lat_topic, PARTITIONS, REPLICATION)
        self._throughput(fig, step, tag, proc, endpoint, client, topic)
        self._latency(fig, step, tag, endpoint, client, variant, lat_topic)
        if proc is None:
            return
        fig.values["peak_rss_kib"] = proc.tree.peak_rss_kib() or None
        if not proc.alive():
            fig.fail(("peak_rss_kib",), f"proxy exited: {proc.log_tail()}")
        self._idle(fig, step, proc, endpoint)

    def _throughput(self, fig: Figures, step: Step, tag: str, proc: P.ProxyProcess | None,
                    endpoint: P.Endpoint, client: dict[str, str], topic: str) -> None:
        """Step 2: produce at full speed, consume it back; the proxy's CPU over both."""
        cpu: dict[str, float] = {}
        if proc is not None:
            cpu["before"] = proc.tree.cpu_seconds()

        def produce() -> None:
            r = producer_perf(self.tools, f"{tag}-produce", bootstrap=endpoint.bootstrap,
                              topic=topic, records=self.records, record_size=RECORD_SIZE,
                              throughput=-1, client=client, timeout=self.timeout)
            fig.values["producer_rec_s"] = r.rec_s
            fig.values["producer_mb_s"] = r.mb_s
            fig.extra["produced_records"] = self.records

        def consume() -> None:
            r = consumer_perf(self.tools, f"{tag}-consume", bootstrap=endpoint.bootstrap,
                              topic=topic, records=self.records, client=client,
                              timeout=self.timeout)
            fig.values["consumer_mb_s"] = r.mb_s
            fig.extra["consumed_records"] = r.records
            if proc is not None:
                moved = (fig.extra["produced_records"] + r.records) * RECORD_SIZE
                used = proc.tree.cpu_seconds() - cpu["before"]
                fig.values["cpu_s_per_gb"] = round(used / (moved / 1e9), 3)

        throughput = ("producer_mb_s", "producer_rec_s")
        if step((*throughput, "consumer_mb_s", "cpu_s_per_gb"), "producer", produce):
            step(("consumer_mb_s", "cpu_s_per_gb"), "consumer", consume)
        else:
            fig.fail(("consumer_mb_s", "cpu_s_per_gb"), "no data: the producer run failed")

    def _latency(self, fig: Figures, step: Step, tag: str, endpoint: P.Endpoint,
                 client: dict[str, str], variant: str, lat_topic: str) -> None:
        """Step 3: latency percentiles at a fixed rate."""

        def latency() -> None:
            rate = self.latency_rate[variant]
            r = latency_probe(self.tools, f"{tag}-latency", bootstrap=endpoint.bootstrap,
                              topic=lat_topic, records=int(rate * self.args.seconds),
                              record_size=RECORD_SIZE, rate=rate, client=client,
                              timeout=self.timeout)
            fig.values["p50_ms"], fig.values["p99_ms"] = r.p50_ms, r.p99_ms
            fig.values["p999_ms"] = r.p999_ms
            fig.extra["latency_rate_achieved"] = r.rate
            fig.extra["latency_max_ms"] = r.max_ms

        step(("p50_ms", "p99_ms", "p999_ms"), "latency", latency)

    def _idle(self, fig: Figures, step: Step, proc: P.ProxyProcess,
              endpoint: P.Endpoint) -> None:
        """Step 4 (proxies only): the RSS growth per idle connection."""
        host, port = endpoint.first

        def idle() -> None:
            before = proc.tree.rss_kib()
            opened, after = hold_idle_connections(host, port, ca_file=endpoint.ca_file,
                                                  count=self.idle_connections,
                                                  measure=proc.tree.rss_kib)
            fig.values["idle_rss_kib_per_conn"] = round((after - before) / opened, 2)
            fig.extra["idle_connections"] = opened
            fig.extra["idle_rss_before_kib"] = before
            fig.extra["idle_rss_after_kib"] = after

        step(("idle_rss_kib_per_conn",), "idle connections", idle)


Step = Callable[[tuple[str, ...], str, Callable[[], None]], bool]


def _stepper(fig: Figures, tag: str, proc: P.ProxyProcess | None) -> Step:
    """``step(names, what, fn)`` runs one measurement; when it fails, the figures ``names`` fail
    with the reason (and the proxy's exit, if it died) and ``step`` answers False."""

    def step(names: tuple[str, ...], what: str, fn: Callable[[], None]) -> bool:
        try:
            fn()
        except (MeasureError, ClusterError, OSError) as exc:
            reason = str(exc)
            if proc is not None and not proc.alive():
                reason += f"; proxy exited {proc.popen.returncode}: {proc.log_tail()}"
            fig.fail(names, f"{what}: {reason}")
            log(f"  {tag}: {what} failed: {reason}")
            return False
        return True

    return step


# --------------------------------------------------------------------------------------------
# aggregation


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Median of every figure over the rounds; null with the first reason if none measured."""
    out: dict[str, Any] = {}
    for name in FIGURES:
        values = [r[name] for r in runs if r.get(name) is not None]
        if values:
            out[name] = round(statistics.median(values), 3)
            if len(values) < len(runs):
                out[f"{name}_note"] = f"median of {len(values)} of {len(runs)} rounds"
        else:
            out[name] = None
            reasons = [r[f"{name}_reason"] for r in runs if f"{name}_reason" in r]
            out[f"{name}_reason"] = reasons[0] if reasons else "not measured"
    return out


def add_ratios(results: dict[str, dict[str, Any]]) -> None:
    """``ratios``: each figure divided by direct's (same variant)."""
    for variants in results.values():
        for variant, summary in variants.items():
            direct = results.get("direct", {}).get(variant, {})
            ratios: dict[str, Any] = {}
            for name in FIGURES:
                mine, base = summary.get(name), direct.get(name)
                if name in PROXY_ONLY:
                    ratios[name] = None
                    ratios[f"{name}_reason"] = NO_PROXY
                elif mine is None or not base:
                    ratios[name] = None
                    ratios[f"{name}_reason"] = ("no figure for this path" if mine is None
                                                else "no figure for direct")
                else:
                    ratios[name] = round(mine / base, 3)
            summary["ratios"] = ratios


def machine() -> dict[str, Any]:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kib = int(Path("/proc/meminfo").read_text().split()[1])
    git = ["git", "-C", str(REPO_ROOT)]
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0"}
    commit = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True,
                            check=False).stdout.strip() or None
    dirty = subprocess.run([*git, "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True, check=False, env=env).stdout.strip()
    return {"cpu_model": cpu, "cpus": os.cpu_count(), "memory_gib": round(mem_kib / 2**20, 1),
            "kernel": platform.release(), "python": platform.python_version(),
            "java": _java_version(), "commit": commit, "worktree_dirty": bool(dirty)}


def _java_version() -> str:
    out = subprocess.run(["java", "-version"], capture_output=True, text=True, check=False)
    return (out.stderr.splitlines() or ["unknown"])[0]


# --------------------------------------------------------------------------------------------
# main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench/run.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true",
                   help="smoke run: 1 round, ~4 s runs, 1000 idle connections")
    p.add_argument("--rounds", type=int, help="interleaved rounds (default 5: runs on a shared "
                                              "2-core machine vary by about 10 %%; --quick: 1)")
    p.add_argument("--seconds", type=float,
                   help="target length of one throughput run (default 15; --quick: 4)")
    p.add_argument("--idle-connections", type=int,
                   help="idle connections per proxy (default 10000; --quick: 1000); capped by "
                        "the file descriptor limit")
    p.add_argument("--paths", default=",".join(P.PATH_NAMES),
                   help=f"comma-separated subset of {','.join(P.PATH_NAMES)}")
    p.add_argument("--variants", default=",".join(P.VARIANTS), help="plain,tls or one of them")
    p.add_argument("--edge-workers", type=int, default=1, help="kafka-edge --workers (default 1)")
    p.add_argument("--launcher", type=Path, default=REPO_ROOT / "scripts" / "kafka-local",
                   help="cluster launcher (default scripts/kafka-local)")
    p.add_argument("--broker-heap", default="2g", help="broker -Xmx (default 2g)")
    p.add_argument("--work", type=Path, default=BENCH_DIR / "work" / "run",
                   help="scratch directory, emptied first (default bench/work/run)")
    p.add_argument("--out", type=Path, default=BENCH_DIR / "results" / "latest.json",
                   help="results file (default bench/results/latest.json)")
    p.add_argument("--no-docs", action="store_true",
                   help="do not regenerate docs/performance.md and docs/performance.png")
    args = p.parse_args(argv)
    args.rounds = args.rounds or (1 if args.quick else 5)
    args.seconds = args.seconds or (4.0 if args.quick else 15.0)
    args.idle_connections = args.idle_connections or (1000 if args.quick else 10_000)
    args.paths = [x for x in args.paths.split(",") if x]
    args.variants = [x for x in args.variants.split(",") if x]
    for name in args.paths:
        if name not in P.PATH_NAMES:
            p.error(f"unknown path {name!r}")
    for name in args.variants:
        if name not in P.VARIANTS:
            p.error(f"unknown variant {name!r}")
    if args.rounds < 1:
        p.error("--rounds must be >= 1")
    return args


def raise_fd_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 1 << 20
    for target in (want, hard):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, max(target, hard)))
            return target
        except (ValueError, OSError):
            continue
    return soft


def run_rounds(args: argparse.Namespace, bench: Bench, classes: dict[str, P.ClientPath],
               runs: dict[str, dict[str, list[dict[str, Any]]]]) -> None:
    """Every path in every variant, ``--rounds`` times: the paths in an order rotated each
    round, the variants alternating; each run's figures are appended to ``runs``."""
    for round_no in range(args.rounds):
        shift = round_no % len(args.paths)
        order = args.paths[shift:] + args.paths[:shift]
        variants = args.variants if round_no % 2 == 0 else args.variants[::-1]
        for variant in variants:
            for name in order:
                log(f"round {round_no + 1}/{args.rounds} {variant} {name}")
                result = run_or_fail(bench, classes[name], variant, round_no)
                runs[name][variant].append(result)
                log("  " + ", ".join(f"{k}={result[k]}" for k in FIGURES
                                     if result.get(k) is not None))


def run_or_fail(bench: Bench, path: P.ClientPath, variant: str, round_no: int) -> dict[str, Any]:
    """One run's figures; an error other than an interrupt fails every figure of the run."""
    try:
        return bench.run(path, variant, round_no)
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as exc:
        traceback.print_exc()
        fig = Figures()
        fig.fail(FIGURES, f"benchmark error: {type(exc).__name__}: {exc}")
        return fig.as_dict()


def results_document(args: argparse.Namespace, runs: dict[str, dict[str, list[dict[str, Any]]]],
                     bench: Bench, cluster: Cluster, peers: dict[str, Peer], *,
                     started: dt.datetime, load_start: tuple[float, float, float],
                     fd_limit: int) -> dict[str, Any]:
    """What bench/results/latest.json holds: the medians per path and variant, every round's
    figures, and the settings, machine and peers they were measured with."""
    results = {p: {v: summarize(rs) for v, rs in vs.items()} for p, vs in runs.items()}
    add_ratios(results)
    for p, vs in results.items():
        for v, summary in vs.items():
            summary["rounds"] = runs[p][v]
    return {
        "schema": 1,
        "date": started.isoformat(timespec="seconds"),
        "mode": "quick" if args.quick else "full",
        "kafka_version": cluster.kafka_version,
        **machine(),
        "settings": {
            "rounds": args.rounds, "brokers": BROKERS, "partitions": PARTITIONS,
            "replication_factor": REPLICATION, "acks": "all", "record_size": RECORD_SIZE,
            "records_per_run": bench.records, "target_seconds": args.seconds,
            "latency_rate_rec_s": bench.latency_rate,
            "calibration_runs": 1 if args.quick else 2,
            "idle_connections": bench.idle_connections,
            "idle_connections_requested": args.idle_connections, "fd_limit": fd_limit,
            "edge_workers": args.edge_workers, "broker_heap": args.broker_heap,
            "launcher": str(args.launcher),
        },
        "load_average": {"start": [round(x, 2) for x in load_start],
                         "end": [round(x, 2) for x in os.getloadavg()]},
        "peers": {name: peer.describe() for name, peer in peers.items()},
        "paths": results,
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    fd_limit = raise_fd_limit()
    work: Path = args.work.resolve()
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    log(f"work directory {work}; file descriptor limit {fd_limit}")

    peers = fetch_all(work)
    for name, peer in peers.items():
        log(f"peer {name}: {peer.error or peer.version}")
    blocks = P.PortBlocks()
    ports = {(path, variant): blocks.block() for path in P.PATH_NAMES for variant in P.VARIANTS}

    advertise: dict[str, str] = {}
    if "--advertise-listener" in launcher_options(args.launcher):
        advertise = {HAPROXY_PLAIN: f"PLAINTEXT://{P.HOST}:{ports['haproxy', 'plain']}",
                     HAPROXY_TLS: f"SSL://{P.HOST}:{ports['haproxy', 'tls']}"}
    log(f"starting a {BROKERS}-broker cluster with {args.launcher}")
    try:
        cluster: Cluster = start_cluster(args.launcher, work / "cluster", brokers=BROKERS,
                                         heap=args.broker_heap, advertise=advertise,
                                         log=work / "kafka-local.log")
    except (ClusterError, OSError, subprocess.TimeoutExpired, ValueError) as exc:
        log(f"cannot start the cluster: {exc}")
        return 1
    started = dt.datetime.now(dt.UTC)
    load_start = os.getloadavg()
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {
        p: {v: [] for v in args.variants} for p in args.paths}
    bench: Bench | None = None
    try:
        log(f"cluster up: Kafka {cluster.kafka_version}, "
            f"bootstrap {cluster.bootstrap('PLAINTEXT')}")
        ctx = P.Context(cluster, make_proxy_tls(work / "proxy-tls"), peers, work, ports,
                        edge_workers=args.edge_workers, fd_limit=fd_limit)
        tools = KafkaTools(REPO_ROOT / ".cache" / "kafka" / cluster.kafka_version / "libs", work)
        topics = Topics(cluster.bootstrap("PLAINTEXT"))
        bench = Bench(args, ctx, tools, topics)
        bench.warm_up()
        for variant in args.variants:
            bench.calibrate(variant)
        run_rounds(args, bench, {name: P.PATH_CLASSES[name](ctx) for name in args.paths}, runs)
        topics.close()
    finally:
        log("stopping the cluster")
        cluster.down()

    assert bench is not None
    doc = results_document(args, runs, bench, cluster, peers, started=started,
                           load_start=load_start, fd_limit=fd_limit)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2) + "\n")
    log(f"wrote {args.out}")
    if not args.no_docs:
        report.write_docs(doc)
        log(f"wrote {report.DOC} and {report.PLOT}")
    print(report.table(doc))
    return 0


if __name__ == "__main__":
    sys.exit(main())

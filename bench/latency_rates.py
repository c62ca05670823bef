"""Produce latency direct and through kafka-edge at several fixed rates, side by side.

``make bench`` measures latency at one rate (half the direct saturation). This asks whether
what the proxy adds depends on the load: one 3-broker cluster, an unmeasured warm-up, then for
each round and rate bench/LatencyProbe.java runs direct and through kafka-edge (this tree,
plaintext), in alternating order, each on a fresh topic. Medians of p50 and p99 per rate.
``--hog P`` adds a third path: direct while a process burns P % of one core in 0.5 ms slices
(does taking that much CPU from a saturated cluster alone add the proxy's latency?).

    bench/latency_rates.py --rates 2000,10000,21300 --rounds 2 [--hog 4]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys

from ab import PARTITIONS, RECORD_SIZE, REPLICATION, Build, start_edge
from brokers import Topics, start_cluster
from measure import KafkaTools, LatencyResult, latency_probe, producer_perf, wait_ready
from paths import HOST, PortBlocks
from peers import BENCH_DIR, REPO_ROOT

HOG = """
import sys, time
busy = 0.0005  # s per slice
idle = busy * (100 / float(sys.argv[1]) - 1)
while True:
    end = time.perf_counter() + busy
    while time.perf_counter() < end:
        pass
    time.sleep(idle)
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rates", default="2000,10000,21300", help="records/s, comma-separated")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=12.0, help="length of one probe run")
    ap.add_argument("--hog", type=float, default=0.0,
                    help="also measure direct beside a process burning this %% of one core")
    args = ap.parse_args()
    rates = [float(r) for r in args.rates.split(",")]

    work = BENCH_DIR / "work" / "latency-rates"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    cluster = start_cluster(REPO_ROOT / "scripts" / "kafka-local", work / "cluster", brokers=3,
                            heap="2g", advertise={}, log=work / "cluster.log")
    tools = KafkaTools(REPO_ROOT / ".cache" / "kafka" / cluster.kafka_version / "libs", work)
    topics = Topics(cluster.bootstrap("PLAINTEXT"))
    base = PortBlocks().block()
    proc = start_edge(Build("edge", ".", REPO_ROOT / "src"), cluster, "plain", base, work,
                      None, "warning")
    results: dict[tuple[float, str], list[LatencyResult]] = {}
    try:
        wait_ready(HOST, base, ca_file=None, started=proc.started, timeout=60, alive=proc.alive,
                   brokers=len(cluster.node_ids))
        topics.create("warm-up", PARTITIONS, REPLICATION)
        producer_perf(tools, "warm-up", bootstrap=cluster.bootstrap("PLAINTEXT"),
                      topic="warm-up", records=400_000, record_size=RECORD_SIZE,
                      throughput=-1, client={}, timeout=600)
        paths = [("direct", cluster.bootstrap("PLAINTEXT")), ("kafka-edge", f"{HOST}:{base}")]
        if args.hog:
            paths.append(("direct+hog", cluster.bootstrap("PLAINTEXT")))
        for r in range(args.rounds):
            for rate in rates:
                for name, bootstrap in paths if r % 2 == 0 else paths[::-1]:
                    topic = f"lat-{name.replace('+', '-')}-{int(rate)}-{r}"
                    topics.create(topic, PARTITIONS, REPLICATION)
                    hog = (subprocess.Popen([sys.executable, "-c", HOG, str(args.hog)])
                           if name == "direct+hog" else None)
                    try:
                        res = latency_probe(tools, topic, bootstrap=bootstrap, topic=topic,
                                            records=int(rate * args.seconds),
                                            record_size=RECORD_SIZE, rate=rate, client={},
                                            timeout=600)
                    finally:
                        if hog is not None:
                            hog.kill()
                            hog.wait()
                    topics.delete(topic)
                    results.setdefault((rate, name), []).append(res)
                    print(f"[rates] round {r} {rate:>8,.0f}/s {name:10} p50={res.p50_ms:.3f} "
                          f"p99={res.p99_ms:.3f}", flush=True)
    finally:
        proc.stop()
        topics.close()
        cluster.down()
    print(f"\n[rates] medians over {args.rounds} rounds (ms)")
    for (rate, name), runs in sorted(results.items()):
        print(f"  {rate:>8,.0f}/s {name:10} p50={statistics.median(x.p50_ms for x in runs):.3f}"
              f"  p99={statistics.median(x.p99_ms for x in runs):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""docs/performance.md and docs/performance.png from bench/results/latest.json.

Run by bench/run.py after a benchmark; on its own (``.venv/bin/python bench/report.py
[RESULTS.json]``) it regenerates the page from stored results without measuring anything.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
RESULTS = BENCH_DIR / "results" / "latest.json"
DOC = REPO_ROOT / "docs" / "performance.md"
PLOT = REPO_ROOT / "docs" / "performance.png"

PATHS = ("direct", "kafka-edge", "haproxy", "kroxylicious", "kafka-proxy")
VARIANTS = ("plain", "tls")
COLUMNS = (  # (figure, heading, digits)
    ("producer_mb_s", "produce MB/s", 1),
    ("producer_rec_s", "produce rec/s", 0),
    ("consumer_mb_s", "consume MB/s", 1),
    ("p50_ms", "p50 ms", 2),
    ("p99_ms", "p99 ms", 2),
    ("p999_ms", "p99.9 ms", 1),
    ("cpu_s_per_gb", "CPU s/GB", 2),
    ("peak_rss_kib", "peak RSS MiB", 1),
    ("idle_rss_kib_per_conn", "KiB/idle conn", 1),
    ("ready_s", "ready s", 2),
)
RATIO_FIGURES = ("producer_mb_s", "consumer_mb_s", "p50_ms", "p99_ms", "p999_ms")


def _fmt(value: float, digits: int) -> str:
    return f"{value:,.{digits}f}"


def _cell(summary: dict[str, Any], name: str, digits: int, notes: list[str],
          ratio: bool = True) -> str:
    value = summary.get(name)
    if value is None:
        reason = summary.get(f"{name}_reason", "not measured")
        if reason not in notes:
            notes.append(reason)
        return f"n/a [{notes.index(reason) + 1}]"
    if name == "peak_rss_kib":
        value = value / 1024
    text = _fmt(value, digits)
    factor = (summary.get("ratios") or {}).get(name)
    if ratio and factor is not None and name in RATIO_FIGURES:
        text += f" ({factor:.2f}x)"
    return text


def table(doc: dict[str, Any]) -> str:
    """The results as Markdown tables (one per variant) with numbered reasons for gaps."""
    notes: list[str] = []
    out: list[str] = []
    for variant in VARIANTS:
        rows = [(p, doc["paths"][p][variant]) for p in PATHS
                if variant in doc["paths"].get(p, {})]
        if not rows:
            continue
        title = ("plaintext on both sides" if variant == "plain"
                 else "TLS client->proxy and proxy->broker")
        out += [f"**{variant}** ({title})", "",
                "| path | " + " | ".join(h for _, h, _ in COLUMNS) + " |",
                "|---|" + "---:|" * len(COLUMNS)]
        for path, summary in rows:
            cells = [_cell(summary, n, d, notes, ratio=path != "direct") for n, _, d in COLUMNS]
            out.append(f"| {path} | " + " | ".join(cells) + " |")
        out.append("")
    if notes:
        out += ["Figures marked n/a could not be measured:", ""]
        out += [f"{i}. {reason}" for i, reason in enumerate(notes, 1)]
        out.append("")
    return "\n".join(out)


def plot(doc: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = (("producer_mb_s", "produce MB/s (higher is better)"),
              ("consumer_mb_s", "consume MB/s (higher is better)"),
              ("p99_ms", "produce latency p99 ms at half the direct\nsaturation (lower is better)"))
    paths = [p for p in PATHS if p in doc["paths"]]
    fig, axes = plt.subplots(1, len(panels), figsize=(15, 4.8))
    width = 0.38
    for ax, (name, title) in zip(axes, panels, strict=True):
        for i, variant in enumerate(VARIANTS):
            values = [doc["paths"][p].get(variant, {}).get(name) for p in paths]
            xs = [k + (i - 0.5) * width for k in range(len(paths))]
            bars = ax.bar(xs, [v or 0 for v in values], width, label=variant,
                          color=("#4c72b0", "#dd8452")[i])
            for bar, value in zip(bars, values, strict=True):
                label = ("n/a" if value is None
                         else f"{value:.0f}" if value >= 10 else f"{value:.1f}")
                ax.annotate(label, (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                            ha="center", va="bottom", fontsize=7)
            if name == "p99_ms":
                p50 = [doc["paths"][p].get(variant, {}).get("p50_ms") for p in paths]
                ax.scatter([x for x, v in zip(xs, p50, strict=True) if v is not None],
                           [v for v in p50 if v is not None], marker="_", s=200, color="black",
                           zorder=3, label="p50" if i == 0 else None)
        ax.set_title(title, fontsize=10)
        ax.set_xticks(range(len(paths)))
        ax.set_xticklabels(paths, rotation=20, fontsize=9)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"kafka-edge benchmark ({doc['mode']} run, {doc['settings']['rounds']} "
                 f"round(s), Kafka {doc['kafka_version']}, {doc['cpus']} CPUs, {doc['date']})",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _launcher(settings: dict[str, Any]) -> str:
    launcher = str(settings.get("launcher", "scripts/kafka-local"))
    return launcher.removeprefix(str(REPO_ROOT) + "/")


def _load(doc: dict[str, Any], when: str) -> str:
    values = (doc.get("load_average") or {}).get(when)
    return " / ".join(f"{v:.1f}" for v in values) if values else "unknown"


def _peers(doc: dict[str, Any]) -> list[str]:
    out = []
    for name in PATHS[1:]:
        peer = doc["peers"].get(name)
        if peer is None:
            continue
        state = f"not run: {peer['error']}" if peer["error"] else peer["version"]
        notes = "; ".join(peer.get("notes") or [])
        out.append(f"- **{name}**: {state}" + (f" ({notes})" if notes else ""))
    return out


ANALYSIS = Path(__file__).with_name("analysis.md")


def _analysis() -> list[str]:
    """The hand-written reading of the figures (targets, profile, what changes bought)."""
    if not ANALYSIS.exists():
        return []
    return [ANALYSIS.read_text().rstrip(), ""]


def markdown(doc: dict[str, Any]) -> str:
    s = doc["settings"]
    rates = ", ".join(f"{v}: {r:,.0f} records/s" for v, r in s["latency_rate_rec_s"].items())
    calibration = ("the better of two calibration runs" if s.get("calibration_runs", 1) > 1
                   else "a calibration run")
    quick = doc["mode"] == "quick"
    lines = [
        "# Performance",
        "",
        "<!-- Generated by bench/report.py from bench/results/latest.json: edit those, "
        "not this page. -->",
        "",
        "kafka-edge compared with direct access to the brokers and with other proxies on the "
        "same local 3-broker Apache Kafka cluster, on one small machine. Every figure is the "
        f"median over {s['rounds']} interleaved round(s); the ratio in brackets is against "
        "direct access in the same variant.",
        "",
    ]
    if quick:
        lines += ["> This is a **quick (smoke) run**: one round of short runs. The figures show "
                  "that every path works, not how they compare; run `make bench` for that.", ""]
    lines += [
        f"Run {doc['date']} on {doc['cpu_model']} ({doc['cpus']} CPUs, {doc['memory_gib']} GiB, "
        f"Linux {doc['kernel']}), {doc['java']}, Apache Kafka {doc['kafka_version']}, "
        f"kafka-edge at commit `{(doc['commit'] or 'unknown')[:12]}`"
        + (" (with uncommitted changes)" if doc.get("worktree_dirty") else "") + ". "
        f"Load average (1/5/15 min) {_load(doc, 'start')} at the start and "
        f"{_load(doc, 'end')} at the end: the machine is shared, and a load well above "
        f"{doc['cpus']} means the figures are depressed and noisy.",
        "",
        "![throughput and latency by path](performance.png)",
        "",
        "## Results",
        "",
        table(doc),
        *_analysis(),
        "## Method",
        "",
        f"- **Cluster**: {s['brokers']} KRaft brokers (launcher `{_launcher(s)}`, -Xmx "
        f"{s['broker_heap']}) on loopback, one topic per run with {s['partitions']} partitions "
        f"and replication factor {s['replication_factor']}, deleted afterwards.",
        "- **Paths**: `direct` to the brokers' own listeners; `kafka-edge`; `haproxy` in TCP "
        "mode (it cannot rewrite metadata, so the brokers have extra listeners whose advertised "
        "addresses are HAProxy's per-broker frontends: the floor for a proxy that rewrites "
        "nothing); `kroxylicious` with port-per-broker routing (`portIdentifiesNode`); "
        "grepplabs `kafka-proxy` with one `--bootstrap-server-mapping` and dynamic listeners for "
        "the other brokers.",
        "- **Variants**: `plain`, plaintext on both sides; `tls`, TLS from the client to the "
        "proxy (a test CA's certificate for 127.0.0.1) and from the proxy to the brokers' SSL "
        "listener with the hostname checked. HAProxy terminates and re-originates TLS like the "
        "others. Direct `tls` is the client on the brokers' SSL listener.",
        "- **Interleaving**: each round runs every path once per variant, in an order rotated "
        "by one path per round (and variants alternating), so drift on a shared machine "
        "spreads over all paths. Each proxy is started fresh for every run.",
        f"- **Throughput**: Apache Kafka's `ProducerPerformance` ({s['record_size']}-byte "
        f"records, acks=all, no throttle, {s['records_per_run']:,} records: about "
        f"{s['target_seconds']:.0f} s direct), then `ConsumerPerformance` reading them back "
        "through the same path (its fetch MB/s, which leaves out the group join). MB = 2^20 "
        "bytes, as the tools print.",
        f"- **Latency**: `bench/LatencyProbe.java` (the Java producer, acks=all, the path's "
        f"client settings) at a fixed rate of half the direct saturation measured by "
        f"{calibration} at start, after an unmeasured warm-up run on the fresh "
        f"cluster ({rates}), {s['target_seconds']:.0f} s, the first 20 % left out; each "
        "send() to its acknowledgement timed with System.nanoTime(), p50 / p99 / p99.9 in ms "
        "to the microsecond (`ProducerPerformance` records whole milliseconds, too coarse for "
        "a 1 ms target).",
        "- **CPU per GB**: utime + stime of the proxy process and its descendants "
        "(/proc/PID/stat, children's time included) over the producer and consumer runs, "
        "divided by the record payload relayed (produced plus consumed, 10^9 bytes). The kernel "
        "counts in 10 ms ticks, so short (quick) runs give coarse values.",
        "- **Peak RSS**: VmHWM of the proxy's processes (summed) after the throughput and "
        "latency runs.",
        f"- **Idle connections**: {s['idle_connections']:,} TCP (or TLS) connections to the "
        "bootstrap port that each complete an ApiVersions exchange (so the proxy holds an "
        "upstream connection too); the proxy's RSS growth divided by the connections."
        + (f" (Fewer than the {s['idle_connections_requested']:,} asked for: each needs two "
           f"file descriptors in the proxy and the limit here is {s['fd_limit']:,}, which this "
           "sandbox does not let even root raise.)"
           if s["idle_connections"] < s["idle_connections_requested"] else ""),
        "- **Ready**: from the proxy's process start until a Metadata request through its "
        "bootstrap port lists all brokers.",
        f"- kafka-edge ran with {s['edge_workers']} worker process(es); the other proxies with "
        "their defaults (HAProxy one thread per CPU, Kroxylicious Netty event loops and the "
        "JVM's default heap, kafka-proxy GOMAXPROCS = CPUs).",
        "",
        "## Peers",
        "",
        *_peers(doc),
        "",
        "## Reproduce",
        "",
        "```sh",
        "make bench                               # 3 rounds, ~15 s runs (about 40 minutes)",
        ".venv/bin/python bench/run.py --quick    # smoke run: 1 round, short runs",
        ".venv/bin/python bench/run.py --paths direct,kafka-edge --variants tls --rounds 5",
        ".venv/bin/python bench/report.py         # regenerate this page from the JSON",
        "# kafka-edge against itself (what a change buys), see 'Measuring a change' above:",
        ".venv/bin/python bench/ab.py --build before=HEAD~1 --build after=. --rounds 4",
        ".venv/bin/python bench/micro.py --tls    # per-request CPU, no cluster",
        ".venv/bin/python bench/tls_memory.py     # OpenSSL's own memory per TLS session",
        "```",
        "",
        "Peers are fetched into bench/peers/ on the first run (git-ignored). The Go module "
        "proxy may refuse grepplabs kafka-proxy; then `KAFKA_PROXY_SRC=/path/to/checkout` "
        "builds it from a source checkout instead. Raw per-round "
        "figures, settings and peer versions are in `bench/results/latest.json`.",
        "",
    ]
    return "\n".join(lines)


def write_docs(doc: dict[str, Any], doc_path: Path = DOC, plot_path: Path = PLOT) -> None:
    doc_path.parent.mkdir(parents=True, exist_ok=True)
    plot(doc, plot_path)
    doc_path.write_text(markdown(doc))


def main(argv: list[str]) -> int:
    source = Path(argv[0]) if argv else RESULTS
    doc = json.loads(source.read_text())
    write_docs(doc)
    print(f"wrote {DOC} and {PLOT}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

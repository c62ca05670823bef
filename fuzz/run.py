"""Run the coverage-guided fuzzer (atheris, libFuzzer's engine) on the proxy's parsers.

One target per process (libFuzzer exits when its run count is reached):

    python -m fuzz.run TARGET --runs N [--work DIR]    # one target, N executions
    python -m fuzz.run --all --runs N [--json OUT]     # every target in turn, N each
    python -m fuzz.run --chaos [--json OUT]            # every target, CHAOS_RUNS (1,000,000)

The seed corpus (fuzz/seeds.py) is written to DIR/corpus/TARGET first; libFuzzer adds what it
finds there. A crash (an invariant broken, or an exception other than the ProtocolError a
malformed input may raise) leaves its input in DIR/crashes/TARGET-crash-<hash> and fails the
run; copy it under tests/data/fuzz/TARGET/ to make it a regression test
(tests/unit/fuzz/test_fuzz_regressions.py replays every file there).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TARGET_NAMES = ("request_stream", "response_stream", "pairing", "rewrite", "api_versions",
                "request_peek", "sasl_v0", "client_hello", "proxy_header", "config")
# make chaos: 1,000,000 executions in all; the configuration loader (YAML parsing first) runs
# about 30 times slower than the byte parsers, so it gets fewer
CHAOS_RUNS = {**dict.fromkeys(TARGET_NAMES, 105_000), "config": 55_000}


def target(name: str) -> Callable[[bytes], None]:
    """The target function called ``name`` (importing the targets imports kafka_edge)."""
    from fuzz import targets_edge, targets_pairing, targets_protocol

    for module in (targets_protocol, targets_pairing, targets_edge):
        found = getattr(module, name, None)
        if callable(found):
            return found  # type: ignore[no-any-return]
    raise KeyError(name)


def fuzz_one(name: str, runs: int, work: Path, random_seed: int | None = None) -> None:
    """In this process: seed the corpus, instrument kafka_edge, run libFuzzer (exits)."""
    import atheris

    with atheris.instrument_imports(include=["kafka_edge", "fuzz"]):
        fn = target(name)  # first: what is imported before is not instrumented
    from fuzz.seeds import SEEDS

    corpus = work / "corpus" / name
    corpus.mkdir(parents=True, exist_ok=True)
    for i, seed in enumerate(SEEDS[name]()):
        (corpus / f"seed-{i}").write_bytes(seed)
    (work / "crashes").mkdir(exist_ok=True)
    fixed = [f"-seed={random_seed}"] if random_seed is not None else []  # None: libFuzzer's
    atheris.Setup([sys.argv[0], *fixed, f"-runs={runs}", "-max_len=8192", "-timeout=20",
                   "-rss_limit_mb=4096", "-print_final_stats=1",
                   f"-artifact_prefix={work / 'crashes'}/{name}-", str(corpus)], fn)
    atheris.Fuzz()


# the final statistics (-print_final_stats=1) come on either way a run ends: libFuzzer's own
# "Done N runs", or atheris counting -runs itself and exiting gracefully (no "Done" line)
_EXECUTED = re.compile(r"stat::number_of_executed_units:\s*(\d+)")
_COV = re.compile(r"cov: (\d+) ft: (\d+)")


def executions(out: str) -> int:
    """How many inputs a fuzz run's output says it executed (0 if it did not finish)."""
    found = _EXECUTED.search(out)
    return int(found.group(1)) if found else 0


def run_target(name: str, runs: int, work: Path, timeout_s: float) -> dict[str, object]:
    """Fuzz ``name`` in a child process; its executions, coverage and outcome."""
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "fuzz.run", name, "--runs", str(runs),
                           "--work", str(work)], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout_s, check=False)
    out = proc.stdout + proc.stderr
    covs = _COV.findall(out)
    crashes = sorted(str(p) for p in (work / "crashes").glob(f"{name}-*"))
    return {"name": name, "executions": executions(out),
            "seconds": round(time.monotonic() - started, 1),
            "coverage_edges": int(covs[-1][0]) if covs else 0,
            "features": int(covs[-1][1]) if covs else 0,
            "exit": proc.returncode, "crashes": crashes,
            "log_tail": out[-3000:] if proc.returncode else ""}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("target", nargs="?", choices=TARGET_NAMES)
    ap.add_argument("--all", action="store_true")
    ap.add_argument("--chaos", action="store_true", help="every target, CHAOS_RUNS executions")
    ap.add_argument("--runs", type=int, default=10000)
    ap.add_argument("--work", type=Path)
    ap.add_argument("--seed", type=int, help="libFuzzer's random seed (make test's smoke: fixed, "
                    "so a run is repeatable; make chaos: a new one each run)")
    ap.add_argument("--json", type=Path, help="write the per-target results here (--all)")
    args = ap.parse_args()
    if args.target and not (args.all or args.chaos):
        work = args.work or Path(tempfile.mkdtemp(prefix="fuzz-"))
        fuzz_one(args.target, args.runs, work, args.seed)
        return 0
    work = args.work or Path(tempfile.mkdtemp(prefix="fuzz-"))
    results = []
    for name in TARGET_NAMES:
        runs = CHAOS_RUNS[name] if args.chaos else args.runs
        res = run_target(name, runs, work, timeout_s=max(600.0, runs / 20))
        print(f"{name:16} {res['executions']:>9} runs  {res['seconds']:>7}s  "
              f"cov {res['coverage_edges']}  exit {res['exit']}", flush=True)
        results.append(res)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0 if all(r["exit"] == 0 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())

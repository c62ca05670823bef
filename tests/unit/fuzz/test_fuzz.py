"""The coverage-guided fuzzer (fuzz/, atheris): a short run of every target (the long one is in
``make chaos``), and every input a fuzz run ever failed on, replayed.

An input under tests/data/fuzz/TARGET/ is a file libFuzzer wrote for a failed run, renamed for
what it exercises; its target must now accept it with every invariant holding.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from fuzz.run import TARGET_NAMES, executions, target

REPO = Path(__file__).resolve().parents[3]
DATA = REPO / "tests" / "data" / "fuzz"
SMOKE_RUNS = 3000

REGRESSIONS = sorted(p for p in DATA.glob("*/*") if p.is_file())


@pytest.mark.parametrize("path", REGRESSIONS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_regression_input(path: Path) -> None:
    assert path.parent.name in TARGET_NAMES, f"{path}: no target called {path.parent.name}"
    target(path.parent.name)(path.read_bytes())


def test_every_regression_folder_names_a_target() -> None:
    assert REGRESSIONS, "no fuzz regression inputs found"
    assert {p.parent.name for p in REGRESSIONS} <= set(TARGET_NAMES)


@pytest.mark.parametrize("name", TARGET_NAMES)
def test_fuzz_smoke(name: str, tmp_path: Path) -> None:
    # a fixed seed: the smoke is repeatable (make chaos explores with new seeds)
    proc = subprocess.run([sys.executable, "-m", "fuzz.run", name, "--runs", str(SMOKE_RUNS),
                           "--work", str(tmp_path), "--seed", "1"], cwd=REPO,
                          capture_output=True, text=True, timeout=300, check=False)
    out = proc.stdout + proc.stderr
    crashes = list((tmp_path / "crashes").glob("*"))
    assert proc.returncode == 0 and not crashes, out[-4000:]
    assert executions(out) >= SMOKE_RUNS, out[-4000:]
    assert "no interesting inputs" not in out, "the target is not instrumented: no coverage"

"""Every exported metric moves in at least one e2e scenario.

``EdgeProcess.stop()`` scrapes /metrics before it signals, and ``tests/e2e/edge.py`` keeps, for
the whole session, the metric families that had a non-zero sample (``MOVED``). This module is
named to run last in tests/e2e (pytest runs files in name order) and compares that set with
every metric ``kafka_edge.observability.metrics.Metrics`` defines. It only means something
after the whole directory ran, so it skips when a run selected less (one file, ``-k``, ``-m``).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kafka_edge.observability.metrics import Metrics

from .edge import MOVED, SCRAPES

pytestmark = pytest.mark.e2e

HERE = Path(__file__).resolve().parent

# Metrics that cannot move against a correct cluster, each with the reason and where it is
# covered instead.
CANNOT_MOVE: dict[str, str] = {
    "kafka_edge_upstream_dials_refused": (
        "defence in depth: the broker directory never holds an address outside the upstream "
        "address policy (learn_answer refuses whole answers that name one), so only a bug can "
        "make the dialler refuse; covered by tests/unit/test_dial_refusal.py"),
}


def exported_families() -> set[str]:
    """The family name of every metric a proxy exports (a counter's without ``_total``)."""
    return {family.name for family in Metrics().registry.collect()}


def _e2e_file(item: pytest.Item) -> Path | None:
    path = Path(str(item.path)).resolve()
    return path if path.parent == HERE else None


def _e2e_reports(config: pytest.Config, outcome: str) -> list[str]:
    """Node ids of the e2e tests the terminal reporter filed under ``outcome`` (skipped,
    failed, deselected, ...); empty when it is not there to ask (``-p no:terminal``)."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None:
        return []
    prefix = HERE.relative_to(config.rootpath).as_posix() + "/"
    return sorted({r.nodeid for r in reporter.stats.get(outcome, [])
                   if getattr(r, "nodeid", "").startswith(prefix)})


def _not_whole_directory(request: pytest.FixtureRequest) -> str | None:
    """Why this session's results cannot answer the question (it did not run every e2e
    test), or None."""
    items = [i for i in request.session.items if _e2e_file(i) is not None]
    collected = {_e2e_file(i) for i in items}
    missing = sorted(p.name for p in HERE.glob("test_*.py") if p.resolve() not in collected)
    if missing:
        return ("this session did not run the whole tests/e2e directory (nothing collected "
                f"from {', '.join(missing)}): run `pytest tests/e2e` for this check")
    deselected = _e2e_reports(request.config, "deselected")
    if deselected:
        return (f"{len(deselected)} e2e test(s) were deselected (-k / -m): run "
                "`pytest tests/e2e` for this check")
    after = [i.nodeid for i in items[items.index(request.node) + 1:]]
    if after:
        return f"this check must run after every other e2e test; these come later: {after}"
    return None


def test_every_metric_moved_in_some_scenario(request: pytest.FixtureRequest) -> None:
    reason = _not_whole_directory(request)
    if reason is not None:
        pytest.skip(reason)
    exported = exported_families()
    stale = sorted(set(CANNOT_MOVE) - exported)
    assert not stale, f"CANNOT_MOVE names metrics that no longer exist: {stale}"
    never = sorted(exported - set(MOVED) - set(CANNOT_MOVE))
    scraped = [s for s in SCRAPES if s[2] is None]
    report = os.linesep.join(
        [f"{len(never)} metric(s) never had a non-zero sample in any kafka-edge process the "
         f"e2e tests stopped ({len(scraped)} scraped, {len(SCRAPES) - len(scraped)} not):",
         *(f"  {name}" for name in never),
         "not scraped:", *(f"  {t} [{n}]: {why}" for t, n, why in SCRAPES if why),
         "failed e2e tests:", *(f"  {t}" for t in _e2e_reports(request.config, "failed")),
         "skipped e2e tests:", *(f"  {t}" for t in _e2e_reports(request.config, "skipped"))])
    assert not never, report
    also = sorted(set(CANNOT_MOVE) & set(MOVED))
    assert not also, (f"listed as unable to move, yet moved (a bug, or the allowlist is "
                      f"wrong): {', '.join(f'{m} in {sorted(MOVED[m])}' for m in also)}")

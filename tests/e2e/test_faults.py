"""The fault scenarios (tests/chaos/cases.py: a broker killed, leaders moved, an edge killed
behind HAProxy, a drained restart, a reload, certificates rotated, the network cut, a worker
killed): numbered records written through kafka-edge while the fault happens; nothing lost,
nothing twice, order kept. 10,000 records per scenario in ``make test``, 100,000 in
``make chaos`` (KAFKA_EDGE_CHAOS=1)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.chaos import cases
from tests.chaos.scenarios import long_suite

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

RECORDS = 100_000 if long_suite() else 10_000


@pytest.mark.parametrize("scenario", cases.SCENARIOS, ids=[s.name for s in cases.SCENARIOS])
def test_fault(scenario: cases.Scenario, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    scenario.run(request.getfixturevalue(scenario.world), tmp_path, RECORDS)

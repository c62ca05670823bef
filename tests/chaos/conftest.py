"""The long suite (``make chaos``): collected only with KAFKA_EDGE_CHAOS=1, so that ``make test``
(pytest over tests/) leaves it out; its fast subset is tests/e2e/test_chaos_fast.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    if os.environ.get("KAFKA_EDGE_CHAOS") == "1":
        return None
    return collection_path.name.startswith("test_")

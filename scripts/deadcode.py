#!/usr/bin/env python3
"""The dead-code check of `make lint` and `make test`: vulture over src/ and testbed/.

Two passes, each at ``--min-confidence 60``: every kind of finding (unused functions, methods,
classes, properties, attributes and variables are reported at 60% confidence, unused imports at
90%, unused arguments and unreachable code at 100%):

* ``src/`` on its own: product code that only tests use is dead in the product;
* ``testbed/``, with ``tests/``, ``bench/`` and ``scripts/`` (``scripts/kafka-local`` included)
  scanned for the uses that keep it alive, as it is their library; only testbed/'s findings
  are reported.

The false positives (callbacks the event loop calls, generated definitions, ...) are named in
``scripts/deadcode_whitelist.py``, a vulture whitelist (``vulture src
scripts/deadcode_whitelist.py --min-confidence 60`` is the first pass by hand). A name listed
there that vulture no longer flags fails the check too, so the list stays true.

Exit status 0: nothing found; 1: dead code or a stale whitelist entry (listed); 2: vulture could
not read a file.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

from vulture import Vulture
from vulture.core import Item

ROOT = Path(__file__).resolve().parents[1]
WHITELIST = ROOT / "scripts" / "deadcode_whitelist.py"
MIN_CONFIDENCE = 60

# (the folder whose findings are reported, the paths scanned for definitions and uses)
PASSES: tuple[tuple[Path, tuple[Path, ...]], ...] = (
    (ROOT / "src", (ROOT / "src",)),
    (ROOT / "testbed", (ROOT / "testbed", ROOT / "tests", ROOT / "bench", ROOT / "scripts",
                        ROOT / "scripts" / "kafka-local")),
)


def unused(reported: Path, scanned: tuple[Path, ...]) -> list[Item]:
    """Vulture's findings under ``reported`` (the whitelist not applied)."""
    vulture = Vulture()
    vulture.scavenge([str(p) for p in scanned], exclude=[str(WHITELIST)])
    if vulture.exit_code != 0:
        sys.exit(2)  # vulture has said which file it could not read
    return [item for item in vulture.get_unused_code(min_confidence=MIN_CONFIDENCE)
            if Path(item.filename).is_relative_to(reported)]


def whitelisted() -> set[str]:
    """The names the whitelist marks as used (``_.name`` or ``name`` lines)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(WHITELIST.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Attribute):
            names.add(node.attr)
        elif isinstance(node, ast.Name) and node.id != "_":
            names.add(node.id)
    return names


def main() -> int:
    allowed = whitelisted()
    found = [item for reported, scanned in PASSES for item in unused(reported, scanned)]
    dead = [item for item in found if item.name not in allowed]
    stale = sorted(allowed - {item.name for item in found})
    for item in dead:
        print(item.get_report())
    for name in stale:
        print(f"{WHITELIST.relative_to(ROOT)}: {name!r} is whitelisted but vulture no longer "
              "flags it: remove it from the whitelist")
    if dead or stale:
        print(f"dead-code check: {len(dead)} finding(s), {len(stale)} stale whitelist "
              "entr(y/ies)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

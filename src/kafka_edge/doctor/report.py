"""What ``kafka-edge doctor`` found, and how it is shown (pure: no I/O).

One :class:`Finding` per (check, subject): a PASS, WARN or FAIL with a sentence saying what was
seen, or SKIP when the check could not run because something it needs failed (the failure is
its own finding). Any FAIL makes the exit status 1.
"""

from __future__ import annotations

import enum
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass


class Status(enum.Enum):
    PASS = "PASS"
    WARN = "WARN"
    FAIL = "FAIL"
    SKIP = "SKIP"


@dataclass(frozen=True, slots=True, kw_only=True)
class Finding:
    check: str  # upstream, metadata, discovery, clock, edge-dns, edge-cert, cert-expiry, ...
    scope: str  # the cluster (or listener) the subject belongs to
    subject: str  # the address, name or file checked
    status: Status
    detail: str


HEADERS = ("STATUS", "CHECK", "SCOPE", "SUBJECT", "DETAIL")


def exit_code(findings: Sequence[Finding]) -> int:
    """1 if anything failed, else 0 (warnings and skipped checks included)."""
    return 1 if any(f.status is Status.FAIL for f in findings) else 0


def summary(findings: Sequence[Finding]) -> str:
    counts = Counter(f.status for f in findings)
    return "doctor: " + ", ".join(f"{counts[s]} {s.value}" for s in Status)


def render_table(findings: Sequence[Finding]) -> str:
    """A plain-text table, one line per finding, then the summary."""
    rows = [HEADERS, *((f.status.value, f.check, f.scope, f.subject, f.detail)
                       for f in findings)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADERS) - 1)]
    lines = ["  ".join([*(cell.ljust(w) for cell, w in zip(row, widths, strict=False)),
                        row[-1]]).rstrip()
             for row in rows]
    return "\n".join([*lines, "", summary(findings)])


def render_json(findings: Sequence[Finding]) -> str:
    data = {
        "findings": [{"check": f.check, "scope": f.scope, "subject": f.subject,
                      "status": f.status.value, "detail": f.detail} for f in findings],
        "counts": {s.value: sum(f.status is s for f in findings) for s in Status},
        "exit_code": exit_code(findings),
    }
    return json.dumps(data, indent=2)

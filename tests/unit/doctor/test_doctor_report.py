"""The doctor's findings table, JSON and exit status (pure)."""

from __future__ import annotations

import json

from kafka_edge.doctor.report import Finding, Status, exit_code, render_json, render_table


def _f(status: Status, subject: str = "b-1.orders.example.com", detail: str = "d") -> Finding:
    return Finding(check="edge-dns", scope="orders", subject=subject, status=status,
                   detail=detail)


def test_table_has_a_header_aligned_columns_and_a_summary() -> None:
    findings = [_f(Status.PASS, "boot.orders.example.com", "resolves to 10.0.0.1"),
                _f(Status.FAIL, "b-1.orders.example.com", "does not resolve"),
                _f(Status.SKIP, "b-{node}.x", "")]
    lines = render_table(findings).splitlines()
    assert lines[0].split() == ["STATUS", "CHECK", "SCOPE", "SUBJECT", "DETAIL"]
    # the DETAIL column starts at the same offset on every line
    starts = {line.index(word) for line, word in zip(lines[1:3], ("resolves", "does"),
                                                     strict=True)}
    assert starts == {lines[0].index("DETAIL")}
    assert lines[1].startswith("PASS ") and lines[2].startswith("FAIL ")
    assert lines[3].rstrip() == lines[3]  # an empty detail leaves no trailing blanks
    assert lines[-1] == "doctor: 1 PASS, 0 WARN, 1 FAIL, 1 SKIP"


def test_any_failure_exits_1_warnings_and_skips_do_not() -> None:
    assert exit_code([_f(Status.PASS), _f(Status.WARN), _f(Status.SKIP)]) == 0
    assert exit_code([_f(Status.PASS), _f(Status.FAIL)]) == 1
    assert exit_code([]) == 0


def test_json_carries_every_finding_counts_and_the_exit_code() -> None:
    data = json.loads(render_json([_f(Status.WARN, detail="10 days left"), _f(Status.FAIL)]))
    assert data["exit_code"] == 1
    assert data["counts"] == {"PASS": 0, "WARN": 1, "FAIL": 1, "SKIP": 0}
    assert data["findings"][0] == {"check": "edge-dns", "scope": "orders",
                                   "subject": "b-1.orders.example.com", "status": "WARN",
                                   "detail": "10 days left"}

"""Which edge names the served certificates cover, and their days left (pure, on files that
trustme writes)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import trustme

from kafka_edge.doctor.certs import (
    WARN_DAYS,
    CertInfo,
    coverage_finding,
    covering,
    expiry_finding,
    read_certificate,
)
from kafka_edge.doctor.report import Status

NOW = dt.datetime.now(dt.UTC)


def _cert(tmp_path: Path, name: str, *identities: str, not_before: dt.datetime | None = None,
          not_after: dt.datetime | None = None) -> CertInfo:
    leaf = trustme.CA().issue_cert(*identities, not_before=not_before, not_after=not_after)
    path = tmp_path / f"{name}.pem"
    path.write_bytes(b"".join(p.bytes() for p in leaf.cert_chain_pems))
    return read_certificate(path)


def test_a_wildcard_covers_exactly_one_label(tmp_path: Path) -> None:
    cert = _cert(tmp_path, "orders", "*.orders.example.com")
    assert cert.covers("b-1.orders.example.com")
    assert cert.covers("BOOT.orders.example.com.")
    assert not cert.covers("orders.example.com")
    assert not cert.covers("x.b-1.orders.example.com")
    assert not cert.covers("b-1.payments.example.com")


def test_an_ip_address_is_matched_against_ip_entries_only(tmp_path: Path) -> None:
    cert = _cert(tmp_path, "ip", "edge.example.com", "127.0.0.2", "::1")
    assert cert.ip_addresses == ("127.0.0.2", "::1")
    assert cert.covers("127.0.0.2") and cert.covers("0:0:0:0:0:0:0:1")
    assert not cert.covers("127.0.0.3")
    assert cert.dns_names == ("edge.example.com",)


def test_the_first_covering_certificate_is_the_one_the_edge_serves(tmp_path: Path) -> None:
    exact = _cert(tmp_path, "exact", "boot.orders.example.com")
    wild = _cert(tmp_path, "wild", "*.orders.example.com")
    assert covering([exact, wild], "boot.orders.example.com") is exact
    assert covering([wild, exact], "boot.orders.example.com") is wild
    assert covering([exact, wild], "b-2.orders.example.com") is wild
    assert covering([exact], "b-2.orders.example.com") is None


def test_a_name_no_certificate_covers_fails_and_says_what_is_served(tmp_path: Path) -> None:
    certs = [_cert(tmp_path, "some", "boot.orders.example.com", "b-1.orders.example.com")]
    missed = coverage_finding("orders", "b-2.orders.example.com", certs, role="broker 2")
    assert missed.status is Status.FAIL and missed.check == "edge-cert"
    assert "broker 2" in missed.detail
    assert "some.pem: boot.orders.example.com, b-1.orders.example.com" in missed.detail
    hit = coverage_finding("orders", "b-1.orders.example.com", certs, role="broker 1")
    assert hit.status is Status.PASS and "some.pem" in hit.detail


def test_days_left(tmp_path: Path) -> None:
    day = dt.timedelta(days=1)
    cases = [
        (NOW - 40 * day, NOW - day, Status.FAIL, "expired 1.0 days ago"),
        (NOW - day, NOW + 10 * day, Status.WARN, f"(under {WARN_DAYS})"),
        (NOW - day, NOW + 100 * day, Status.PASS, "100 days left"),
        (NOW + 2 * day, NOW + 100 * day, Status.FAIL, "not valid before"),
    ]
    for i, (start, end, status, words) in enumerate(cases):
        cert = _cert(tmp_path, f"c{i}", "a.example.com", not_before=start, not_after=end)
        finding = expiry_finding("listener edge", cert, NOW)
        assert (finding.status, finding.check) == (status, "cert-expiry"), (i, finding)
        assert words in finding.detail, (i, finding.detail)
        assert finding.subject == cert.path

"""The end of validity the proxy reports for a certificate file (the expiry gauge, the status
page): the earliest in its chain, as `kafka-edge doctor` reads it."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import trustme

from kafka_edge.doctor.certs import read_certificate
from kafka_edge.tls.context import certificate_not_after


def test_the_earliest_end_of_validity_in_the_chain_counts(tmp_path: Path) -> None:
    ca = trustme.CA()
    later = dt.datetime(2040, 1, 1, tzinfo=dt.UTC)
    sooner = dt.datetime(2035, 6, 1, tzinfo=dt.UTC)
    leaf = ca.issue_cert("edge.test", not_after=later)
    short = ca.issue_cert("other.test", not_after=sooner)  # stands for an intermediate
    chain = tmp_path / "chain.pem"
    chain.write_bytes(leaf.cert_chain_pems[0].bytes() + short.cert_chain_pems[0].bytes())
    alone = tmp_path / "leaf.pem"
    alone.write_bytes(leaf.cert_chain_pems[0].bytes())

    assert certificate_not_after(alone) == later.timestamp()
    assert certificate_not_after(chain) == sooner.timestamp()
    assert certificate_not_after(chain) == read_certificate(chain).not_after.timestamp()

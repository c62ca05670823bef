"""The command line: check, dns and argument errors (no network)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kafka_edge import __version__
from kafka_edge.cli import main


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert __version__ in capsys.readouterr().out


def test_check_refuses_a_bad_config_with_key_paths(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("clusters:\n  - name: a\n    upstrem: {}\n    port_routing:\n"
                   "      bootstrap_port: 99999\n")
    assert main(["check", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "clusters[0].upstrem" in err and 'did you mean "upstream"' in err
    assert "clusters[0].port_routing.bootstrap_port" in err


def test_check_accepts_a_good_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "good.yaml"
    cfg.write_text("clusters:\n  - name: a\n    upstream:\n"
                   "      bootstrap_servers: ['10.0.0.1:9092']\n    port_routing:\n"
                   "      bind_host: 127.0.0.1\n      bootstrap_port: 19092\n"
                   "      broker_port_base: 19093\n")
    assert main(["check", "--config", str(cfg)]) == 0
    assert "configuration OK: 1 cluster(s)" in capsys.readouterr().out


def test_run_needs_a_config_or_quick_flags(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run"]) == 2
    assert "give --config FILE" in capsys.readouterr().err
    assert main(["run", "--upstream", "10.0.0.1:9092", "--listen", "0.0.0.0:9092"]) == 2
    assert "--advertise" in capsys.readouterr().err


def test_dns_for_port_mode_explains_the_single_name(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "good.yaml"
    cfg.write_text("clusters:\n  - name: a\n    upstream:\n"
                   "      bootstrap_servers: ['10.0.0.1:9092']\n    port_routing:\n"
                   "      bind_host: 0.0.0.0\n      bootstrap_port: 19092\n"
                   "      broker_port_base: 19093\n      advertised_host: edge.example.com\n")
    assert main(["dns", "--config", str(cfg), "--target", "nlb.example.net"]) == 0
    out = capsys.readouterr().out
    assert "edge.example.com" in out and "port-per-broker" in out


EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.mark.parametrize("example", ["msk.yaml", "sni-two-clusters.yaml"])
def test_dns_needs_names_alone(example: str, monkeypatch: pytest.MonkeyPatch,
                               capsys: pytest.CaptureFixture[str]) -> None:
    # the shipped examples name certificate files and password variables that do not exist
    # here: `check` refuses them, `dns` needs none of it
    for name in ("ORDERS_DISCOVERY_PASSWORD", "PAYMENTS_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    assert main(["check", "--config", str(EXAMPLES / example)]) == 2
    assert "file not found" in capsys.readouterr().err
    assert main(["dns", "--config", str(EXAMPLES / example), "--target", "nlb.example."]) == 0
    out = capsys.readouterr().out
    assert " CNAME nlb.example." in out or " nlb.example." in out
    assert "example.com" in out


def test_dns_still_refuses_a_bad_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("listeners:\n  - {name: e, bind: '0.0.0.0:9098', tls: {certificates: "
                   "[{cert_file: no.pem, key_file: no.key}]}}\nclusters:\n  - name: a\n"
                   "    upstream: {bootstrap_servers: ['10.0.0.1:9092']}\n"
                   "    sni_routing: {listener: e, bootstrap_host: 'boot..example.com',\n"
                   "                  broker_host_pattern: 'b-{node}.example.com'}\n")
    assert main(["dns", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "clusters[0].sni_routing.bootstrap_host" in err and "no.pem" not in err

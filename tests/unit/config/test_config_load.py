"""load_config: files, YAML problems, and paths relative to the file."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from kafka_edge.config import ConfigError, load_config

MINIMAL = """\
clusters:
  - name: local
    upstream:
      bootstrap_servers: ["127.0.0.1:9092"]
    port_routing:
      bind_host: 127.0.0.1
      bootstrap_port: 19092
      broker_port_base: 19093
"""


def errors_of(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    return caught.value.errors


def test_a_minimal_file_loads(tmp_path: Path) -> None:
    path = tmp_path / "edge.yaml"
    path.write_text(MINIMAL)
    config = load_config(path)
    assert config.clusters[0].port_routing is not None
    assert config.clusters[0].port_routing.bootstrap_port == 19092
    assert load_config(str(path)) == config


def test_a_missing_file(tmp_path: Path) -> None:
    assert errors_of(tmp_path / "nope.yaml") == [f"{tmp_path / 'nope.yaml'}: file not found"]


def test_a_directory(tmp_path: Path) -> None:
    assert errors_of(tmp_path) == [f"{tmp_path}: expected a file, got a directory"]


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "edge.yaml"
    path.write_bytes(b"clusters: \xff\n")
    assert errors_of(path) == [f"{path}: expected UTF-8 text, got byte 0xff at offset 10"]


def test_a_yaml_syntax_error_gives_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "edge.yaml"
    path.write_text("clusters:\n  - name: a\n    upstream: [unclosed\n")
    (error,) = errors_of(path)
    assert error.startswith(f"{path}:4:1: invalid YAML: ")


def test_a_tab_indent_gives_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "edge.yaml"
    path.write_text("clusters:\n\t- name: a\n")
    (error,) = errors_of(path)
    assert error.startswith(f"{path}:2:1: invalid YAML: ")


def test_a_duplicate_key_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "edge.yaml"
    path.write_text(MINIMAL + "limits: {}\nlimits: {max_connections: 5}\n")
    (error,) = errors_of(path)
    assert error == (
        f"{path}:10:1: invalid YAML: found duplicate key 'limits' (while constructing a mapping)"
    )


def test_merge_keys_may_be_overridden(tmp_path: Path) -> None:
    path = tmp_path / "edge.yaml"
    path.write_text(MINIMAL + "limits:\n  <<: {max_connections: 5, idle_timeout_s: 9}\n"
                    "  max_connections: 7\n")
    limits = load_config(path).limits
    assert (limits.max_connections, limits.idle_timeout_s) == (7, 9.0)


def test_yaml_is_read_safely(tmp_path: Path) -> None:
    path = tmp_path / "edge.yaml"
    path.write_text("!!python/object/apply:os.system ['true']\n")
    (error,) = errors_of(path)
    assert "invalid YAML" in error
    assert "could not determine a constructor" in error


@pytest.mark.parametrize(("text", "got"), [
    ("", "an empty document"),
    ("# only a comment\n", "an empty document"),
    ("- a\n- b\n", "a list"),
    ("just text\n", "a str"),
])
def test_the_top_level_must_be_a_mapping(tmp_path: Path, text: str, got: str) -> None:
    path = tmp_path / "edge.yaml"
    path.write_text(text)
    assert errors_of(path) == [f"{path}: expected a mapping at the top level, got {got}"]


def test_validation_errors_come_through_with_key_paths(tmp_path: Path) -> None:
    path = tmp_path / "edge.yaml"
    path.write_text(MINIMAL.replace('"127.0.0.1:9092"', '"kafka1"'))
    assert errors_of(path) == [
        'clusters[0].upstream.bootstrap_servers[0]: expected "host:port", got "kafka1"']


def test_relative_paths_are_relative_to_the_file_not_the_working_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, harness
) -> None:
    folder = harness.base_dir  # holds certs/ (see conftest.write_pki)
    path = folder / "edge.yaml"
    path.write_text(yaml.safe_dump({
        "listeners": [{"name": "edge", "bind": "0.0.0.0:9098", "tls": {"certificates": [
            {"cert_file": "certs/orders.pem", "key_file": "certs/orders.key"}]}}],
        "clusters": [{"name": "orders", "upstream": {"bootstrap_servers": ["b-1:9096"]},
                      "sni_routing": {"listener": "edge",
                                      "bootstrap_host": "boot.orders.example.com",
                                      "broker_host_pattern": "b-{node}.orders.example.com"}}],
    }))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    config = load_config(Path("..") / path.relative_to(tmp_path))
    assert config.listeners[0].tls.certificates[0].cert_file == (
        elsewhere / ".." / path.relative_to(tmp_path).parent / "certs/orders.pem")
    assert config.listeners[0].tls.certificates[0].cert_file.resolve() == (
        folder / "certs/orders.pem").resolve()


def test_password_env_is_read_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "edge.yaml"
    path.write_text(MINIMAL.replace(
        '      bootstrap_servers: ["127.0.0.1:9092"]\n',
        '      bootstrap_servers: ["127.0.0.1:9092"]\n'
        "      discovery:\n"
        "        sasl: {mechanism: PLAIN, username: u, password_env: KAFKA_EDGE_TEST_PW}\n"))
    monkeypatch.delenv("KAFKA_EDGE_TEST_PW", raising=False)
    assert errors_of(path) == [
        "clusters[0].upstream.discovery.sasl.password_env: expected a set environment variable, "
        "but KAFKA_EDGE_TEST_PW is not set"]
    monkeypatch.setenv("KAFKA_EDGE_TEST_PW", "pw")
    sasl = load_config(path).clusters[0].upstream.discovery.sasl
    assert sasl is not None
    assert sasl.password.reveal() == "pw"
    assert load_config(path, env={"KAFKA_EDGE_TEST_PW": "other"}) != load_config(path)

"""The package as users install it: ``python -m build`` makes a wheel and an sdist whose version
is ``kafka_edge.__version__`` (its one source), and the wheel installed into a fresh virtualenv
gives a working ``kafka-edge`` command. Installing pulls the runtime dependencies from the package
index, as a user's ``pip install`` does."""

from __future__ import annotations

import subprocess
import sys
import tarfile
import venv
import zipfile
from pathlib import Path

import pytest

import kafka_edge

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "build", "--wheel", "--sdist", "--outdir", str(out),
                    str(ROOT)], check=True, capture_output=True, timeout=600)
    return out


def test_wheel_and_sdist_carry_the_one_version(dist: Path) -> None:
    version = kafka_edge.__version__
    (wheel,) = dist.glob("*.whl")
    (sdist,) = dist.glob("*.tar.gz")
    assert wheel.name.startswith(f"kafka_edge-{version}-py3-none-any")
    assert sdist.name == f"kafka_edge-{version}.tar.gz"
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        metadata = z.read(f"kafka_edge-{version}.dist-info/METADATA").decode()
        entry_points = z.read(f"kafka_edge-{version}.dist-info/entry_points.txt").decode()
    assert f"Version: {version}" in metadata
    assert "kafka-edge = kafka_edge.cli:main" in entry_points
    assert "kafka_edge/py.typed" in names and "kafka_edge/protocol/messages.py" in names
    assert not any(n.startswith(("tests/", "testbed/")) for n in names)
    with tarfile.open(sdist) as t:
        assert f"kafka_edge-{version}/src/kafka_edge/cli.py" in t.getnames()


def test_the_wheel_installs_into_a_fresh_virtualenv(dist: Path, tmp_path: Path) -> None:
    (wheel,) = dist.glob("*.whl")
    env = tmp_path / "venv"
    venv.create(env, with_pip=True)
    subprocess.run([str(env / "bin" / "python"), "-m", "pip", "install", "-q", str(wheel)],
                   check=True, capture_output=True, timeout=600)
    command = str(env / "bin" / "kafka-edge")
    got = subprocess.run([command, "--version"], check=True, capture_output=True, text=True)
    assert got.stdout.strip() == f"kafka-edge {kafka_edge.__version__}"
    check = subprocess.run([command, "check", "--config",
                            str(ROOT / "examples" / "port-per-broker.yaml")],
                           check=False, capture_output=True, text=True, cwd=tmp_path)
    assert check.returncode == 0, check.stderr
    assert "configuration OK" in check.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text("clusters: [{name: x}]\n")
    refused = subprocess.run([command, "check", "--config", str(bad)], check=False,
                             capture_output=True, text=True)
    assert refused.returncode == 2 and "clusters[0].upstream" in refused.stderr

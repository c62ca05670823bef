"""The proxies kafka-edge is compared with: fetched and built into bench/peers/ on first use.

- HAProxy: the Debian package (``make setup`` installs it); nothing to fetch.
- Kroxylicious: ``io.kroxylicious:kroxylicious-runtime`` and its dependencies from Maven Central
  (the ``kroxylicious-app`` distribution is not published there), started through the small
  launcher ``bench/BenchKroxylicious.java``, compiled here with ``javac``.
- grepplabs kafka-proxy: ``go install github.com/grepplabs/kafka-proxy@VERSION`` through the Go
  module proxy. If the module proxy does not serve it, ``KAFKA_PROXY_SRC=/path/to/source`` (a
  checkout of the same version; ``KAFKA_PROXY_SRC_VERSION`` labels it in the results) is built
  with ``go build`` instead, its dependencies still coming from the Go module proxy.
- kafka-edge: this repository's ``.venv/bin/kafka-edge``.

Nothing here is committed: bench/peers/ is git-ignored. A peer that cannot be obtained is
returned with ``error`` set, and the benchmark reports its figures as null with that reason.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
PEERS_DIR = BENCH_DIR / "peers"

KROXYLICIOUS_VERSION = "0.12.0"
KAFKA_PROXY_MODULE = "github.com/grepplabs/kafka-proxy"
KAFKA_PROXY_VERSION = "v0.4.3"
LOG4J_VERSION = "2.24.3"

KROXYLICIOUS_POM = """\
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>dev.kafka-edge.bench</groupId>
  <artifactId>kroxylicious-peer</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>io.kroxylicious</groupId><artifactId>kroxylicious-runtime</artifactId>
      <version>{version}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j2-impl</artifactId>
      <version>{log4j}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId><artifactId>log4j-core</artifactId>
      <version>{log4j}</version>
    </dependency>
  </dependencies>
  <build>
    <plugins>
      <plugin>
        <groupId>org.apache.maven.plugins</groupId>
        <artifactId>maven-dependency-plugin</artifactId>
        <version>3.8.1</version>
        <configuration>
          <outputDirectory>${{project.basedir}}/libs</outputDirectory>
          <includeScope>runtime</includeScope>
        </configuration>
      </plugin>
    </plugins>
  </build>
</project>
"""


class PeerError(RuntimeError):
    """A peer could not be fetched or built (the message says why, for the report)."""


@dataclass
class Peer:
    name: str
    version: str | None = None
    home: Path | None = None  # where its files are
    executable: Path | None = None
    error: str | None = None
    notes: list[str] = field(default_factory=list)

    def describe(self) -> dict[str, object]:
        return {
            "version": self.version,
            "home": str(self.home) if self.home else None,
            "error": self.error,
            "notes": self.notes,
        }


def _run(argv: list[str], log: Path, *, cwd: Path | None = None,
         env: dict[str, str] | None = None, timeout: float = 900.0) -> None:
    """Run a build step; PeerError with the last lines of its output if it fails."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        out.write(f"\n$ {' '.join(argv)}\n".encode())
        out.flush()
        try:
            proc = subprocess.run(argv, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, timeout=timeout, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise PeerError(f"{argv[0]}: {exc}") from exc
    if proc.returncode != 0:
        text = re.sub(r"https?://\S+", "<registry>", log.read_text(errors="replace"))
        lines = [ln.strip() for ln in text.splitlines()
                 if ln.strip() and not ln.startswith("$ ")]
        raise PeerError(f"`{' '.join(argv[:3])}` exited {proc.returncode}: "
                        + " | ".join(lines[-3:]))


def haproxy() -> Peer:
    exe = shutil.which("haproxy")
    if exe is None:
        return Peer("haproxy", error="haproxy is not installed (make setup installs the "
                    "Debian package)")
    out = subprocess.run([exe, "-v"], capture_output=True, text=True, check=False).stdout
    version = out.split()[2] if out.startswith("HAProxy version") else out.strip()[:40]
    return Peer("haproxy", version=version, executable=Path(exe))


def kafka_edge() -> Peer:
    exe = REPO_ROOT / ".venv" / "bin" / "kafka-edge"
    if not exe.exists():
        return Peer("kafka-edge", error=f"{exe} missing: run `make setup`")
    proc = subprocess.run([str(exe), "--version"], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        return Peer("kafka-edge", executable=exe,
                    error=f"`kafka-edge --version` exited {proc.returncode}: {tail[0]}")
    commit = subprocess.run(["git", "-C", str(REPO_ROOT), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True, check=False).stdout.strip()
    version = f"{proc.stdout.strip().removeprefix('kafka-edge ')} (working tree at {commit})"
    return Peer("kafka-edge", version=version, executable=exe)


def kroxylicious(log: Path) -> Peer:
    home = PEERS_DIR / f"kroxylicious-{KROXYLICIOUS_VERSION}"
    peer = Peer("kroxylicious", version=KROXYLICIOUS_VERSION, home=home,
                notes=["kroxylicious-runtime from Maven Central, started by "
                       "bench/BenchKroxylicious.java: kroxylicious-app is not published there"])
    stamp = home / ".complete"
    source = BENCH_DIR / "BenchKroxylicious.java"
    if stamp.exists() and stamp.stat().st_mtime >= source.stat().st_mtime:
        return peer
    try:
        for tool in ("mvn", "javac"):
            if shutil.which(tool) is None:
                raise PeerError(f"{tool} is not installed")
        home.mkdir(parents=True, exist_ok=True)
        (home / "pom.xml").write_text(
            KROXYLICIOUS_POM.format(version=KROXYLICIOUS_VERSION, log4j=LOG4J_VERSION))
        _run(["mvn", "-q", "-B", "-f", str(home / "pom.xml"), "dependency:copy-dependencies"],
             log)
        classes = home / "classes"
        classes.mkdir(exist_ok=True)
        _run(["javac", "-d", str(classes), "-cp", str(home / "libs" / "*"), str(source)], log)
    except PeerError as exc:
        peer.error = f"Kroxylicious {KROXYLICIOUS_VERSION}: {exc}"
        return peer
    stamp.touch()
    return peer


def kafka_proxy(log: Path) -> Peer:
    """grepplabs kafka-proxy: go install (Go module proxy), else KAFKA_PROXY_SRC."""
    bindir = PEERS_DIR / "go-bin"
    exe = bindir / "kafka-proxy"
    stamp = bindir / ".version"
    peer = Peer("kafka-proxy", home=bindir, executable=exe)
    if exe.exists() and stamp.exists():
        peer.version = stamp.read_text().strip()
        return peer
    if shutil.which("go") is None:
        peer.error = "go is not installed"
        return peer
    bindir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "GOBIN": str(bindir), "GOFLAGS": "-buildvcs=false"}
    try:
        _run(["go", "install", f"{KAFKA_PROXY_MODULE}@{KAFKA_PROXY_VERSION}"], log, env=env)
        peer.version = f"{KAFKA_PROXY_VERSION} (go install)"
    except PeerError as exc:
        install_error = str(exc)
        src = os.environ.get("KAFKA_PROXY_SRC")
        if not src:
            peer.error = (f"not obtainable here: {install_error} (KAFKA_PROXY_SRC, a source "
                          "checkout to build instead, is not set)")
            return peer
        try:
            _run(["go", "build", "-o", str(exe), "."], log, cwd=Path(src), env=env)
        except PeerError as exc2:
            peer.error = f"go install failed ({install_error}); go build in {src} failed ({exc2})"
            return peer
        label = os.environ.get("KAFKA_PROXY_SRC_VERSION", "unknown version")
        peer.version = f"{label} (go build of KAFKA_PROXY_SRC={src})"
        peer.notes.append("the Go module proxy does not serve this module here; built from a "
                          "source checkout with its dependencies from the module proxy")
    stamp.write_text(peer.version + "\n")
    return peer


def fetch_all(logs: Path) -> dict[str, Peer]:
    """Every proxy under test, fetched/built as needed (errors are recorded, not raised)."""
    return {
        "kafka-edge": kafka_edge(),
        "haproxy": haproxy(),
        "kroxylicious": kroxylicious(logs / "peer-kroxylicious.log"),
        "kafka-proxy": kafka_proxy(logs / "peer-kafka-proxy.log"),
    }

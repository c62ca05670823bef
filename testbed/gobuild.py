"""Build the test bed's Go programs (``testbed/go/<name>``) once, into ``.cache/go-bin``.

``build("sarama_v0")`` returns the path of ``.cache/go-bin/sarama_v0-<hash>``, where ``<hash>`` is
a SHA-256 of the program's sources (``*.go``, ``go.mod``, ``go.sum``) and the target platform:
a binary whose sources have not changed is reused without calling ``go`` at all; a change
builds a new one (older builds of the same program are removed).

Everything Go writes stays under ``.cache/go``: ``GOPATH``, ``GOMODCACHE`` (written with
``-modcacherw`` so that ``rm -rf .cache`` works), ``GOCACHE``, and the telemetry / config
directory. ``GOTOOLCHAIN=local``: the installed ``go`` builds, nothing downloads another
toolchain. Modules come from ``GOPROXY`` (the default module proxy unless set) on the first
build only; ``scripts/setup.sh`` pre-builds so that ``make test`` downloads nothing.

``go`` is looked up in ``$GO`` (a path), on ``PATH``, then in ``/usr/local/go/bin``;
:class:`GoMissing` says so clearly when there is none.

CLI: ``python -m testbed.gobuild [--check] [NAME ...]`` builds (default: every program) and prints
the paths; ``--check`` only tells (exit status) whether they are built; exit 2: no Go.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import platform
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from testbed import CACHE_DIR, REPO_ROOT

GO_SOURCES = REPO_ROOT / "testbed" / "go"
BIN_DIR = CACHE_DIR / "go-bin"
GO_HOME = CACHE_DIR / "go"
GO_FALLBACKS = (Path("/usr/local/go/bin/go"),)
SOURCE_SUFFIXES = (".go",)
SOURCE_NAMES = ("go.mod", "go.sum")
BUILD_TIMEOUT = 900.0


class GoMissing(RuntimeError):
    """No Go toolchain was found to build a test program."""


class GoBuildError(RuntimeError):
    """``go build`` failed."""


def programs() -> list[str]:
    """Names of the Go programs under ``testbed/go`` (directories with a ``go.mod``)."""
    return sorted(p.parent.name for p in GO_SOURCES.glob("*/go.mod"))


def find_go() -> Path:
    """The ``go`` command: ``$GO``, then ``PATH``, then ``/usr/local/go/bin/go``."""
    candidates: list[Path] = []
    if env := os.environ.get("GO"):
        candidates.append(Path(env))
    if found := shutil.which("go"):
        candidates.append(Path(found))
    candidates.extend(GO_FALLBACKS)
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return path
    raise GoMissing(
        "Go toolchain not found: looked at $GO, `go` on PATH and "
        f"{', '.join(str(p) for p in GO_FALLBACKS)}. Install Go (see the `go` line of "
        f"{GO_SOURCES}/<program>/go.mod for the minimum version) from https://go.dev/dl/ "
        "or set GO=/path/to/go."
    )


def source_files(source_dir: Path) -> list[Path]:
    """The files whose content decides the binary (sorted, relative order fixed)."""
    files = [
        p
        for p in source_dir.rglob("*")
        if p.is_file() and (p.suffix in SOURCE_SUFFIXES or p.name in SOURCE_NAMES)
    ]
    return sorted(files, key=lambda p: p.relative_to(source_dir).as_posix())


def source_hash(source_dir: Path) -> str:
    """SHA-256 (16 hex digits) of the sources' names and contents and the target platform."""
    digest = hashlib.sha256(f"{sys.platform}/{platform.machine()}\0".encode())
    for path in source_files(source_dir):
        digest.update(path.relative_to(source_dir).as_posix().encode() + b"\0")
        data = path.read_bytes()
        digest.update(len(data).to_bytes(8, "big") + data)
    return digest.hexdigest()[:16]


def go_env(go: Path, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment ``go`` runs with: every cache and config directory under ``.cache/go``."""
    env = dict(os.environ if base is None else base)
    # keep the user's own `go env -w` settings (GOPROXY, GOPRIVATE, ...) readable, while the
    # config directory (telemetry counters) moves into the cache
    if "GOENV" not in env:
        try:
            user_env = subprocess.run(
                [str(go), "env", "GOENV"], capture_output=True, text=True, env=env,
                timeout=60, check=True,
            ).stdout.strip()  # fmt: skip
        except (OSError, subprocess.SubprocessError):
            user_env = ""
        env["GOENV"] = user_env or "off"
    env.update(
        {
            "GOPATH": str(GO_HOME),
            "GOMODCACHE": str(GO_HOME / "mod"),
            "GOCACHE": str(GO_HOME / "build"),
            "XDG_CONFIG_HOME": str(GO_HOME / "config"),
            "GOTOOLCHAIN": "local",
            "GOFLAGS": "-modcacherw -mod=readonly -buildvcs=false",
            "CGO_ENABLED": "0",
        }
    )
    env["PATH"] = f"{go.parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def binary_path(name: str, source_dir: Path | None = None) -> Path:
    """Where the binary of the current sources of ``name`` is (or would be) built."""
    src = source_dir or GO_SOURCES / name
    return BIN_DIR / f"{name}-{source_hash(src)}"


def run_go(argv: list[str], *, cwd: Path, env: Mapping[str, str], timeout: float,
           what: str) -> None:
    """Run a ``go`` command (``argv[0]`` is ``go``); :class:`GoBuildError` with the end of its
    output when it fails or takes more than ``timeout`` seconds (``what`` names it there)."""
    try:
        proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True,
                              timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise GoBuildError(f"{what} took more than {timeout:.0f} s") from exc
    if proc.returncode != 0:
        raise GoBuildError(f"{what} failed (exit {proc.returncode}, {argv[0]}):\n"
                           f"{(proc.stdout + proc.stderr)[-4000:]}")


def make_once(name: str, out: Path, make: Callable[[Path], None]) -> Path:
    """``out`` when it exists; otherwise ``make(go)`` (``go``: :func:`find_go`), which must create
    ``out``, under a lock file per ``name`` in :data:`BIN_DIR` so that concurrent test processes
    make it once. Used for :func:`build` and :func:`testbed.gotools.install`."""
    if out.is_file():
        return out
    BIN_DIR.mkdir(parents=True, exist_ok=True)
    with (BIN_DIR / f".{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not out.is_file():
            make(find_go())
    return out


def build(name: str, *, source_dir: Path | None = None, timeout: float = BUILD_TIMEOUT) -> Path:
    """Build ``testbed/go/<name>`` unless a binary of the same sources exists; its path.

    Raises :class:`GoMissing` without a Go toolchain, :class:`GoBuildError` if ``go build``
    fails (with its output)."""
    src = source_dir or GO_SOURCES / name
    if not (src / "go.mod").is_file():
        raise FileNotFoundError(f"no Go program at {src} (no go.mod)")
    out = binary_path(name, src)

    def make(go: Path) -> None:
        tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
        argv = [str(go), "build", "-trimpath", "-ldflags=-s -w", "-o", str(tmp), "."]
        try:
            run_go(argv, cwd=src, env=go_env(go), timeout=timeout, what=f"go build of {name}")
        except GoBuildError:
            tmp.unlink(missing_ok=True)
            raise
        tmp.replace(out)
        for old in BIN_DIR.glob(f"{name}-*"):
            if old != out and len(old.name) == len(out.name):
                old.unlink(missing_ok=True)

    return make_once(name, out, make)


def cli(argv: list[str], *, prog: str, names: Sequence[str], path: Callable[[str], Path],
        make: Callable[[str], Path]) -> int:
    """The command line of this module and :mod:`testbed.gotools`: ``[--check] [NAME ...]``
    makes each NAME (default: ``names``) with ``make`` (with ``--check`` only tests that
    ``path(NAME)`` exists) and prints the paths. Exit 0 on success, 1 when ``--check`` finds one
    missing or making one fails, 2 when there is no Go toolchain (messages start with ``prog``)."""
    check = "--check" in argv
    chosen = [a for a in argv if a != "--check"] or names
    try:
        for name in chosen:
            if check:
                out = path(name)
                if not out.is_file():
                    return 1
            else:
                out = make(name)
            print(out)
    except GoMissing as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 2
    except (GoBuildError, OSError, KeyError) as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str]) -> int:
    """``[--check] [NAME ...]`` (see :func:`cli`): build every program named (default: all) or,
    with ``--check``, test that the binaries of their current sources exist."""
    return cli(argv, prog="gobuild", names=programs(), path=binary_path, make=build)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

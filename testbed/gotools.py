"""Go command-line tools the tests use, installed once from the Go module proxy into ``.cache``.

``install("helm")`` runs ``go install helm.sh/helm/v3/cmd/helm@v3.22.0`` (the package and
version in :data:`TOOLS`) unless ``.cache/go-bin/helm-v3.22.0`` exists, and returns that path.
The version is part of the file name, so changing it here installs the new one on the next run.
``go`` runs in the same environment as :mod:`testbed.gobuild` (modules and build cache under
``.cache/go``, no toolchain download), so nothing is written outside the repository's cache.

CLI: ``python -m testbed.gotools [--check] [NAME ...]`` installs (default: every tool) and prints
the paths; ``--check`` only tells (exit status) whether they are installed; exit 2: no Go.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from testbed.gobuild import BIN_DIR, GoBuildError, GoMissing, find_go, go_env

# name -> (Go package, version): what `go install PACKAGE@VERSION` builds
TOOLS: dict[str, tuple[str, str]] = {
    "helm": ("helm.sh/helm/v3/cmd/helm", "v3.22.0"),
}
INSTALL_TIMEOUT = 1800.0


def tool_path(name: str) -> Path:
    """Where the binary of ``name`` at its pinned version is (or would be) installed."""
    _, version = TOOLS[name]
    return BIN_DIR / f"{name}-{version}"


def install(name: str, *, timeout: float = INSTALL_TIMEOUT) -> Path:
    """``go install`` the pinned version of ``name`` unless it is there already; its path.

    Raises :class:`~testbed.gobuild.GoMissing` without a Go toolchain and
    :class:`~testbed.gobuild.GoBuildError` when ``go install`` fails (with its output)."""
    out = tool_path(name)
    if out.is_file():
        return out
    package, version = TOOLS[name]
    BIN_DIR.mkdir(parents=True, exist_ok=True)
    with (BIN_DIR / f".{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if out.is_file():
            return out
        go = find_go()
        with tempfile.TemporaryDirectory(dir=BIN_DIR, prefix=f".{name}-") as gobin:
            env = {**go_env(go), "GOBIN": gobin}
            # `go install PKG@VERSION` builds outside any module: -mod does not apply
            env["GOFLAGS"] = "-modcacherw -buildvcs=false"
            argv = [str(go), "install", "-trimpath", "-ldflags=-s -w", f"{package}@{version}"]
            try:
                proc = subprocess.run(argv, cwd=gobin, env=env, capture_output=True, text=True,
                                      timeout=timeout, check=False)
            except subprocess.TimeoutExpired as exc:
                raise GoBuildError(f"go install of {name} took more than {timeout:.0f} s") from exc
            if proc.returncode != 0:
                raise GoBuildError(f"go install {package}@{version} failed (exit "
                                   f"{proc.returncode}):\n{(proc.stdout + proc.stderr)[-4000:]}")
            os.replace(Path(gobin) / Path(package).name, out)
    for old in BIN_DIR.glob(f"{name}-v*"):
        if old != out:
            old.unlink(missing_ok=True)
    return out


def main(argv: list[str]) -> int:
    """``[--check] [NAME ...]``: install (with ``--check`` only test that the pinned versions are
    installed) and print the paths. Exit 0 on success, 1 when ``--check`` finds one missing or an
    install fails, 2 when there is no Go toolchain."""
    check = "--check" in argv
    names = [a for a in argv if a != "--check"] or sorted(TOOLS)
    try:
        for name in names:
            if check:
                path = tool_path(name)
                if not path.is_file():
                    return 1
            else:
                path = install(name)
            print(path)
    except GoMissing as exc:
        print(f"gotools: {exc}", file=sys.stderr)
        return 2
    except (GoBuildError, OSError, KeyError) as exc:
        print(f"gotools: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

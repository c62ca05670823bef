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

import os
import sys
import tempfile
from pathlib import Path

from testbed.gobuild import BIN_DIR, cli, go_env, make_once, run_go

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
    package, version = TOOLS[name]

    def make(go: Path) -> None:
        with tempfile.TemporaryDirectory(dir=BIN_DIR, prefix=f".{name}-") as gobin:
            env = {**go_env(go), "GOBIN": gobin}
            # `go install PKG@VERSION` builds outside any module: -mod does not apply
            env["GOFLAGS"] = "-modcacherw -buildvcs=false"
            argv = [str(go), "install", "-trimpath", "-ldflags=-s -w", f"{package}@{version}"]
            run_go(argv, cwd=Path(gobin), env=env, timeout=timeout,
                   what=f"go install {package}@{version}")
            os.replace(Path(gobin) / Path(package).name, out)
        for old in BIN_DIR.glob(f"{name}-v*"):
            if old != out:
                old.unlink(missing_ok=True)

    return make_once(name, out, make)


def main(argv: list[str]) -> int:
    """``[--check] [NAME ...]`` (see :func:`testbed.gobuild.cli`): install every tool named
    (default: all) or, with ``--check``, test that their pinned versions are installed."""
    return cli(argv, prog="gotools", names=sorted(TOOLS), path=tool_path, make=install)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

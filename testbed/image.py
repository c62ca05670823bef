"""The container image, built with podman: ``make image`` and the tests in tests/deploy both call
:func:`build_image`.

No image registry is reachable here, so the base is made locally: a Debian bookworm root file
system from Debian's packages (``mmdebstrap``, the ``minbase`` variant without documentation,
like Debian's slim images), imported into podman as :data:`BASE_TAG`. It stays in podman's image
store and is made again only when :data:`BASE_RECIPE` changes or it is older than
:data:`BASE_MAX_AGE_S` (Debian's security updates). Then ``deploy/container/Containerfile`` is
built on it (``BASE_IMAGE`` build argument) as :data:`IMAGE_TAG`, and its builder stage as
``IMAGE_TAG-builder``; podman's layer cache makes a build whose sources did not change take
seconds. The previous images of both tags, with their layers, are removed when a build replaces
them, so nothing accumulates.

podman runs with its own ``containers.conf`` (:func:`containers_conf`, in ``.cache/podman``): the
``runc`` runtime and no default ulimits, the two settings podman needs on this machine (its
default runtime, crun, fails under the machine's cgroup set-up, and its default ulimits cannot be
applied). pip inside the build verifies the package index with the host's CA bundle, passed as
the build secret ``ca-bundle`` (never stored in a layer): a TLS-inspecting proxy's CA then works
as it does on the host.

CLI: ``python -m testbed.image [--tag TAG]`` builds and prints the tag and image id.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from testbed import CACHE_DIR, REPO_ROOT

CONTAINERFILE = REPO_ROOT / "deploy" / "container" / "Containerfile"
PODMAN_DIR = CACHE_DIR / "podman"
BASE_TAG = "localhost/kafka-edge-base:bookworm"
IMAGE_TAG = "localhost/kafka-edge:dev"
RECIPE_LABEL = "io.kafka-edge.base-recipe"
BUILT_LABEL = "io.kafka-edge.base-built"
BASE_MAX_AGE_S = 30 * 86400
CONTAINERS_CONF = """\
# podman settings for this repository's images and tests (testbed/image.py)
[containers]
default_ulimits = []

[engine]
runtime = "runc"
"""
# the root file system: Debian's minbase, documentation left out, no recommended packages
BASE_RECIPE = (
    "--variant=minbase",
    "--format=tar",
    "--aptopt=APT::Install-Recommends \"false\"",
    "--dpkgopt=path-exclude=/usr/share/man/*",
    "--dpkgopt=path-exclude=/usr/share/doc/*",
    "--dpkgopt=path-include=/usr/share/doc/*/copyright",
    "--dpkgopt=path-exclude=/usr/share/locale/*",
    "--dpkgopt=path-exclude=/usr/share/info/*",
    "bookworm",
)
MIRRORS = (
    "deb http://deb.debian.org/debian bookworm main",
    "deb http://deb.debian.org/debian bookworm-updates main",
    "deb http://deb.debian.org/debian-security bookworm-security main",
)
CA_BUNDLES = (Path("/etc/ssl/certs/ca-certificates.crt"), Path("/etc/pki/tls/certs/ca-bundle.crt"))
BUILD_TIMEOUT = 1200.0


class ImageError(RuntimeError):
    """A tool is missing, or building the base or the image failed."""


def missing_tools() -> str | None:
    """Why images cannot be built here (None: they can)."""
    missing = [tool for tool in ("podman", "mmdebstrap") if shutil.which(tool) is None]
    if missing:
        return (f"{' and '.join(missing)} not installed (apt-get install podman runc mmdebstrap; "
                "scripts/setup.sh does)")
    return None


def containers_conf() -> Path:
    """``.cache/podman/containers.conf``, written when absent or different."""
    path = PODMAN_DIR / "containers.conf"
    if not path.is_file() or path.read_text() != CONTAINERS_CONF:
        PODMAN_DIR.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".containers.conf.{os.getpid()}")
        tmp.write_text(CONTAINERS_CONF)
        tmp.replace(path)
    return path


def podman(*args: str, timeout: float = 120.0, check: bool = True
           ) -> subprocess.CompletedProcess[str]:
    """Run ``podman ARGS`` with this repository's containers.conf; output captured."""
    env = {**os.environ, "CONTAINERS_CONF": str(containers_conf())}
    proc = subprocess.run(["podman", *args], capture_output=True, text=True, env=env,
                          timeout=timeout, check=False)
    if check and proc.returncode != 0:
        raise ImageError(f"podman {' '.join(args[:3])} ... failed (exit {proc.returncode}):\n"
                         f"{(proc.stdout + proc.stderr)[-4000:]}")
    return proc


def image_id(ref: str) -> str | None:
    """The id of image ``ref`` in podman's store, None if there is none."""
    proc = podman("image", "inspect", "--format", "{{.Id}}", ref, check=False)
    return proc.stdout.strip() or None if proc.returncode == 0 else None


def _label(ref: str, label: str) -> str:
    proc = podman("image", "inspect", "--format", f'{{{{index .Labels "{label}"}}}}', ref,
                  check=False)
    return proc.stdout.strip() if proc.returncode == 0 else ""


def recipe_hash() -> str:
    """What decides the base's content (mmdebstrap's arguments and mirrors), hashed."""
    return hashlib.sha256("\0".join(BASE_RECIPE + MIRRORS).encode()).hexdigest()[:16]


def base_is_current() -> bool:
    """The base image exists, from the current recipe, and is younger than BASE_MAX_AGE_S."""
    if _label(BASE_TAG, RECIPE_LABEL) != recipe_hash():
        return False
    built = _label(BASE_TAG, BUILT_LABEL)
    return built.isdigit() and time.time() - int(built) < BASE_MAX_AGE_S


def build_base() -> str:
    """Make the Debian bookworm root file system with mmdebstrap and import it as BASE_TAG."""
    old = image_id(BASE_TAG)
    with tempfile.TemporaryDirectory(dir=PODMAN_DIR, prefix=".base-") as tmp:
        tar = Path(tmp) / "rootfs.tar"
        argv = ["mmdebstrap", "--mode=root" if os.geteuid() == 0 else "--mode=unshare",
                *BASE_RECIPE, str(tar), *MIRRORS]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=BUILD_TIMEOUT,
                              check=False)
        if proc.returncode != 0:
            raise ImageError(f"mmdebstrap failed (exit {proc.returncode}):\n"
                             f"{(proc.stdout + proc.stderr)[-4000:]}")
        podman("import", "--change", 'CMD ["bash"]',
               "--change", f"LABEL {RECIPE_LABEL}={recipe_hash()}",
               "--change", f"LABEL {BUILT_LABEL}={int(time.time())}",
               str(tar), BASE_TAG, timeout=600)
    _remove_replaced(old, BASE_TAG)
    return BASE_TAG


def ca_bundle() -> Path | None:
    """The CA bundle pip uses on this host ($PIP_CERT, else the system's), if any."""
    candidates = [Path(p) for p in (os.environ.get("PIP_CERT"),) if p] + list(CA_BUNDLES)
    return next((p for p in candidates if p.is_file()), None)


def build_image(tag: str = IMAGE_TAG) -> str:
    """Build deploy/container/Containerfile on the local base (made first when needed) as
    ``tag``; return the image id. Concurrent callers wait for each other."""
    reason = missing_tools()
    if reason is not None:
        raise ImageError(reason)
    PODMAN_DIR.mkdir(parents=True, exist_ok=True)
    with (PODMAN_DIR / ".build.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not base_is_current():
            build_base()
        argv = ["build", "--format", "docker", "--layers", "-f", str(CONTAINERFILE),
                "--build-arg", f"BASE_IMAGE={BASE_TAG}"]
        bundle = ca_bundle()
        if bundle is not None:
            argv += ["--secret", f"id=ca-bundle,src={bundle}"]
        # The builder stage is tagged too (TAG-builder, its layers all cached by the first
        # build): they are the cache of the next build, and once a rebuild replaces them,
        # removing the old image removes its layers.
        ids = []
        for ref, target in ((tag, []), (f"{tag}-builder", ["--target", "builder"])):
            old = image_id(ref)
            podman(*argv, *target, "-t", ref, str(REPO_ROOT), timeout=BUILD_TIMEOUT)
            ids.append(image_id(ref))
            if ids[-1] is None:
                raise ImageError(f"podman build reported success but {ref} is not in the store")
            _remove_replaced(old, ref)
        return str(ids[0])


def build_derived(containerfile: Path, context: Path, tag: str,
                  build_args: dict[str, str]) -> str:
    """Build another image (a test's, on top of :data:`IMAGE_TAG`) as ``tag``, replacing and
    removing the previous one; return the image id."""
    old = image_id(tag)
    args = [arg for k, v in build_args.items() for arg in ("--build-arg", f"{k}={v}")]
    podman("build", "--format", "docker", "--layers", "-f", str(containerfile), *args,
           "-t", tag, str(context), timeout=BUILD_TIMEOUT)
    new = image_id(tag)
    if new is None:
        raise ImageError(f"podman build reported success but {tag} is not in the store")
    _remove_replaced(old, tag)
    return new


def _remove_replaced(old: str | None, tag: str) -> None:
    """Remove the image ``tag`` named before a rebuild, if the rebuild replaced it (an image a
    container still uses stays)."""
    if old is not None and old != image_id(tag):
        podman("rmi", old, check=False)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m testbed.image",
                                     description="build the kafka-edge container image")
    parser.add_argument("--tag", default=IMAGE_TAG, help=f"image tag (default {IMAGE_TAG})")
    args = parser.parse_args(argv)
    started = time.monotonic()
    try:
        ident = build_image(args.tag)
    except (ImageError, OSError, subprocess.TimeoutExpired) as exc:
        print(f"image: {exc}", file=sys.stderr)
        return 1
    print(f"{args.tag} {ident[:12]} ({time.monotonic() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

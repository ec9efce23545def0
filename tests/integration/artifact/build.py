"""Making the artifacts as a release would: the wheel, a wheelhouse, the base image, the image.

The build context is what ``.dockerignore`` lets through (its ``!`` lines), copied out of the
checkout, so the wheel is built from exactly the files the image build sees. One wheelhouse
(the project's wheel, every dependency and the build backend, from pip's cache or index) feeds
both the fresh virtualenv and the image build: inside the build, pip reads it through a
``pip.conf`` mounted at ``/etc/pip.conf`` (``no-index``), so the Dockerfile is built unchanged
and offline.

No registry is reachable, so the Dockerfile's default base (``python:3.11-slim-bookworm``)
cannot be pulled: a bookworm base with Debian's Python 3.11 is made with ``mmdebstrap`` and
passed as the ``PYTHON_IMAGE`` build argument. Making it takes a minute or more, so the
tarball is cached in ``$MINERGUARD_TEST_CACHE`` (default ``/var/cache/minerguard-test``) as
``base-<key>.tar``, where the key hashes the recipe below: one CI run builds it once, later runs
on the same machine reuse it, and a change to the recipe builds a new one (the old one is
removed). Debian's updates do not change the key: delete the file to pick them up. Images are
built with buildah (vfs storage, chroot isolation, no daemon) into a storage folder of the
session's own, removed at the end.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[3]
CACHE = Path(os.environ.get("MINERGUARD_TEST_CACHE", "/var/cache/minerguard-test"))
PIP_NOISE = "WARNING: Location"  # pip warns when a pip.conf names local indexes

SUITE = "bookworm"
BASE_PACKAGES = ("python3", "python3-venv", "ca-certificates", "passwd")
# As debian:bookworm-slim (under python:3.11-slim-bookworm): no manuals, docs or translations.
SLIM = (
    "path-exclude=/usr/share/man/*",
    "path-exclude=/usr/share/doc/*",
    "path-include=/usr/share/doc/*/copyright",
    "path-exclude=/usr/share/locale/*",
    "path-exclude=/usr/share/info/*",
)
MMDEBSTRAP = (
    "mmdebstrap",
    "--quiet",
    "--variant=minbase",
    f"--include={','.join(BASE_PACKAGES)}",
    *(f"--dpkgopt={option}" for option in SLIM),
    # The upstream image's interpreter is `python`; Debian's is `python3`.
    '--customize-hook=ln -s /usr/bin/python3 "$1/usr/local/bin/python"',
    SUITE,
)
BASE_CONFIG = ("--env", "LANG=C.UTF-8", "--cmd", "python3")
BASE_KEY = hashlib.sha256(json.dumps([MMDEBSTRAP, BASE_CONFIG]).encode()).hexdigest()[:16]
BASE_IMAGE = f"localhost/minerguard-test-base:{BASE_KEY}"


def run(
    argv: Sequence[str | Path],
    *,
    timeout: float,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> str:
    """Run a tool; its stdout, or an error carrying the end of its output."""
    done = subprocess.run(
        [str(arg) for arg in argv],
        cwd=cwd,
        env=None if env is None else dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        output = "\n".join(
            line
            for line in (done.stdout + done.stderr).splitlines()
            if not line.startswith(PIP_NOISE)
        )
        raise RuntimeError(f"{argv[0]} {argv[1]} exited {done.returncode}:\n{output[-4000:]}")
    return done.stdout


@dataclass
class Timings:
    """Seconds each build step took in this session (printed in the terminal summary)."""

    steps: dict[str, float] = field(default_factory=dict)
    facts: dict[str, str] = field(default_factory=dict)

    @contextlib.contextmanager
    def measure(self, step: str) -> Iterator[None]:
        start = time.monotonic()
        try:
            yield
        finally:
            self.steps[step] = time.monotonic() - start


TIMINGS = Timings()


# -- the wheel --------------------------------------------------------------------------------


def context_paths() -> list[str]:
    """What ``.dockerignore`` lets into the image build (its ``!`` lines)."""
    lines = (REPO / ".dockerignore").read_text().splitlines()
    return [line[1:].strip().rstrip("/") for line in lines if line.startswith("!")]


def copy_context(dest: Path) -> Path:
    """The build context, copied out of the checkout without caches."""
    dest.mkdir(parents=True, exist_ok=True)
    skip = shutil.ignore_patterns("__pycache__", "*.pyc", ".mypy_cache", ".ruff_cache")
    for name in context_paths():
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, dest / name, ignore=skip)
        elif source.exists():
            shutil.copy2(source, dest / name)
    return dest


def build_wheelhouse(context: Path, dest: Path) -> Path:
    """The project's wheel, its dependencies' wheels and the build backend's, in ``dest``."""
    pyproject = tomllib.loads((context / "pyproject.toml").read_text())
    backend: list[str] = pyproject["build-system"]["requires"]
    run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--wheel-dir", dest, context, *backend],
        timeout=600,
    )
    return dest


def project_wheel(wheelhouse: Path) -> Path:
    (wheel,) = wheelhouse.glob("minerguard-*.whl")
    return wheel


def isolated_pip_env() -> dict[str, str]:
    """This environment without pip's settings: nothing but the wheelhouse is used."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env["PIP_CONFIG_FILE"] = os.devnull
    return env


def install_virtualenv(dest: Path, wheelhouse: Path) -> Path:
    """A fresh virtualenv holding the wheel (not editable) and its dependencies, and no pip."""
    run([sys.executable, "-m", "venv", "--without-pip", dest], timeout=120)
    python = dest / "bin" / "python"
    run(
        [sys.executable, "-m", "pip", "--python", python, "install", "--quiet", "--no-index",
         "--find-links", wheelhouse, "minerguard"],
        timeout=600,
        env=isolated_pip_env(),
    )  # fmt: skip
    return dest


# -- the base image and the image -------------------------------------------------------------


def base_tarball(cache: Path = CACHE) -> Path:
    """The base's root filesystem, from the cache or made now (one maker at a time)."""
    cache.mkdir(parents=True, exist_ok=True)
    target = cache / f"base-{BASE_KEY}.tar"
    with (cache / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if target.exists():
            TIMINGS.facts["base"] = f"{target} (cached)"
            return target
        partial = cache / f".base-{BASE_KEY}.{os.getpid()}.tar"
        try:
            with TIMINGS.measure("base (mmdebstrap)"):
                run([*MMDEBSTRAP, partial], timeout=600)
            partial.replace(target)
        finally:
            partial.unlink(missing_ok=True)
        for stale in cache.glob("base-*.tar"):
            if stale != target:
                stale.unlink()
        TIMINGS.facts["base"] = f"{target} (built)"
        return target


@dataclass(frozen=True)
class Buildah:
    """buildah on a storage folder of its own (vfs: overlay storage is not available here)."""

    root: Path

    def __call__(self, *args: str | Path, timeout: float = 120) -> str:
        return run(
            ["buildah", "--root", self.root / "storage", "--runroot", self.root / "run",
             "--storage-driver", "vfs", *args],
            timeout=timeout,
        )  # fmt: skip

    def storage(self, image: str) -> str:
        """``image`` as skopeo names it in this storage."""
        return f"containers-storage:[vfs@{self.root / 'storage'}+{self.root / 'run'}]{image}"

    def import_base(self, tarball: Path, name: str = BASE_IMAGE) -> str:
        """``buildah import`` does not exist: ``from scratch`` + ``add`` + ``commit`` is it."""
        container = self("from", "scratch").strip()
        self("add", container, tarball, "/", timeout=300)
        self("config", *BASE_CONFIG, container)
        self("commit", "--quiet", container, name, timeout=300)
        self("rm", container)
        return name

    def build(self, context: Path, tag: str, base: str, wheelhouse: Path) -> str:
        """The Dockerfile in ``context``, built as a release would, on ``base``."""
        pip_conf = self.root / "pip.conf"
        pip_conf.write_text("[global]\nno-index = true\nfind-links = /wheelhouse\n")
        self(
            "bud", "--quiet", "--isolation", "chroot", "--network", "host",
            "--volume", f"{wheelhouse}:/wheelhouse:ro", "--volume", f"{pip_conf}:/etc/pip.conf:ro",
            "--build-arg", f"PYTHON_IMAGE={base}", "--tag", tag, context,
            timeout=900,
        )  # fmt: skip
        return tag


@dataclass(frozen=True)
class Image:
    """The built image, exported as an OCI layout and unpacked as a runtime would."""

    layout: Path
    rootfs: Path
    config: dict[str, Any]  # the image's config (User, Entrypoint, Cmd, Env, WorkingDir)
    runtime: dict[str, Any]  # umoci's runtime spec for it: the runtime's defaults, the image's user
    compressed_bytes: int
    unpacked_bytes: int

    @property
    def entrypoint(self) -> list[str]:
        return list(self.config.get("Entrypoint") or [])


def export(buildah: Buildah, tag: str, folder: Path) -> Image:
    """Copy the image out of buildah's storage to an OCI layout and unpack it with umoci."""
    layout, rootfs = folder / "oci", folder / "rootfs"
    named = f"{layout}:minerguard"  # umoci's name for it; skopeo's is oci:<that>
    reference = f"oci:{named}"
    run(["skopeo", "copy", "--quiet", buildah.storage(tag), reference], timeout=300)
    run(["umoci", "raw", "unpack", "--image", named, rootfs], timeout=300)
    runtime_path = folder / "umoci-config.json"
    run(["umoci", "raw", "runtime-config", "--image", named, "--rootfs", rootfs, runtime_path],
        timeout=60)  # fmt: skip
    inspected = json.loads(run(["skopeo", "inspect", "--config", reference], timeout=60))
    return Image(
        layout=layout,
        rootfs=rootfs,
        config=dict(inspected["config"]),
        runtime=json.loads(runtime_path.read_text()),
        compressed_bytes=_compressed_size(layout),
        unpacked_bytes=_tree_size(rootfs),
    )


def _compressed_size(layout: Path) -> int:
    """What a node pulls: the manifest's config and layer blobs."""
    index = json.loads((layout / "index.json").read_text())
    digest = index["manifests"][0]["digest"].replace(":", "/", 1)
    manifest = json.loads((layout / "blobs" / digest).read_text())
    return int(manifest["config"]["size"]) + sum(int(layer["size"]) for layer in manifest["layers"])


def _tree_size(root: Path) -> int:
    seen: set[int] = set()
    total = 0
    for directory, _, files in os.walk(root):
        for name in files:
            info = (Path(directory) / name).lstat()
            if info.st_ino not in seen:
                seen.add(info.st_ino)
                total += info.st_size
    return total

"""The artifacts, built once per test run, and the rule that CI runs every artifact test.

Artifact tests are marked ``artifact`` (and ``slow``; ``root`` where they build or run the
image): ``pytest -m "not artifact"`` leaves them out of a quick local run. With ``CI=true`` an
artifact test that is skipped for any reason is reported as failed, as a kernel test is.
The session's build timings and the image's size are printed at the end of the run.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest
from pluggy import Result

from tests.conftest import IN_CI, require
from tests.integration.artifact import build
from tests.integration.artifact.build import TIMINGS, Buildah, Image
from tests.integration.artifact.installed import Virtualenv

IMAGE_TAG = "localhost/minerguard:test"
TOOLS = ("buildah", "mmdebstrap", "skopeo", "umoci", "runc")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, Result[pytest.TestReport], None]:
    """Under CI=true, a skipped artifact test fails: the artifact must be built and run there."""
    outcome = yield
    report = outcome.get_result()
    if not (IN_CI and report.skipped and item.get_closest_marker("artifact")):
        return
    if hasattr(report, "wasxfail"):
        return
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    report.outcome = "failed"
    report.longrepr = f"CI=true, so an artifact test may not be skipped: {reason}"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """How long each build step took, and how big the image is."""
    if not (TIMINGS.steps or TIMINGS.facts):
        return
    terminalreporter.section("artifacts")
    for step, seconds in TIMINGS.steps.items():
        terminalreporter.line(f"{step:<24} {seconds:7.1f} s")
    for fact, value in TIMINGS.facts.items():
        terminalreporter.line(f"{fact:<24} {value}")


@pytest.fixture(scope="session")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project's wheel (built from the image's build context) and every dependency's."""
    context = build.copy_context(tmp_path_factory.mktemp("context"))
    with TIMINGS.measure("wheelhouse"):
        return build.build_wheelhouse(context, tmp_path_factory.mktemp("wheelhouse"))


@pytest.fixture(scope="session")
def venv(wheelhouse: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Virtualenv]:
    """A fresh virtualenv with the wheel installed (not editable), and a folder outside the
    checkout to run its commands in. Removed afterwards (pytest keeps its last runs' folders)."""
    root = tmp_path_factory.mktemp("venv")
    try:
        with TIMINGS.measure("virtualenv"):
            build.install_virtualenv(root, wheelhouse)
        yield Virtualenv(root=root, workdir=tmp_path_factory.mktemp("workdir"))
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def image(wheelhouse: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Image]:
    """The Dockerfile built with buildah on the local base, exported and unpacked."""
    require(os.geteuid() == 0, "building and running the image needs root (buildah, runc)")
    for tool in TOOLS:
        require(shutil.which(tool) is not None, f"{tool} is missing (scripts/setup.sh installs it)")
    folder = tmp_path_factory.mktemp("image")
    buildah = Buildah(folder / "buildah")
    try:
        tarball = build.base_tarball()
        with TIMINGS.measure("base (import)"):
            base = buildah.import_base(tarball)
        with TIMINGS.measure("image (buildah bud)"):
            buildah.build(build.REPO, IMAGE_TAG, base, wheelhouse)
        with TIMINGS.measure("image (export, unpack)"):
            built = build.export(buildah, IMAGE_TAG, folder)
        shutil.rmtree(buildah.root)  # several copies of the root filesystem (vfs): gone early
        TIMINGS.facts["image size"] = (
            f"{built.unpacked_bytes / 2**20:.0f} MiB unpacked, "
            f"{built.compressed_bytes / 2**20:.0f} MiB compressed"
        )
        yield built
    finally:
        shutil.rmtree(buildah.root, ignore_errors=True)
        shutil.rmtree(folder / "rootfs", ignore_errors=True)

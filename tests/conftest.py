"""Fixtures shared by every test layer."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.kube_emulator import EmulatorThread

IN_CI = os.environ.get("CI", "").lower() == "true"


def require(condition: bool, reason: str) -> None:
    """Skip when a kernel feature or privilege is missing, except in CI where it must fail."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"required in CI but missing: {reason}")
    pytest.skip(reason)


@pytest.fixture
def kube() -> Iterator[EmulatorThread]:
    """A fresh Kubernetes API emulator serving minerguard's CRDs on loopback."""
    with EmulatorThread() as emulator:
        yield emulator

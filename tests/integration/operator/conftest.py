"""Fixtures for the operator against kmock: a cluster helper and an operator per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.operator.harness import Cluster
from tests.kube_emulator import EmulatorThread


@pytest.fixture
def cluster(kube: EmulatorThread) -> Iterator[Cluster]:
    """The real client against a fresh emulator."""
    helper = Cluster(kube.url)
    yield helper
    helper.api.close()

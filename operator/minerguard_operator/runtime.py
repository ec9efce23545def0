"""The operator's parts wired together from its settings, independent of kopf.

:mod:`minerguard_operator.handlers` builds one :class:`Runtime` per operator and hands it to
kopf in the memo; the handlers stay thin calls into it.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from minerguard.kube import client, errors, resources
from minerguard_operator.decide import peers
from minerguard_operator.decide.records import DetectionRecord
from minerguard_operator.enforcer import Enforcer
from minerguard_operator.events import Emit
from minerguard_operator.investigator import Investigator
from minerguard_operator.keeper import PolicyKeeper
from minerguard_operator.network import PoolBlocker
from minerguard_operator.settings import OperatorSettings
from minerguard_operator.state import State

log = logging.getLogger(__name__)


def own_identity() -> str:
    """The peering identity: kopf's ``POD_ID`` convention, else host/pid/random."""
    pod = os.environ.get("POD_ID")
    if pod:
        return pod
    return f"{socket.gethostname()}/{os.getpid()}/{secrets.token_hex(3)}"


@dataclass
class Runtime:
    """Settings, shared state and the workers (detections, policies, pool blocks)."""

    settings: OperatorSettings
    emit: Emit
    state: State = field(default_factory=State)
    identity: str = field(default_factory=own_identity)

    def __post_init__(self) -> None:
        def factory() -> client.ApiClient:
            return client.api_client(self.settings.kube_server)

        self.enforcer = Enforcer(
            factory,
            self.state,
            self.emit,
            isolation_label_guarded=self.settings.isolation_label_guarded,
        )
        self.keeper = PolicyKeeper(factory, self.state, self.emit, self.settings.namespaces)
        self.blocker = PoolBlocker(factory, self.state)
        self.investigator = Investigator(factory, self.state, self.settings, self.emit)
        if self.settings.investigate:
            self.enforcer.located = self.investigator.remember

    @property
    def peering(self) -> bool:
        """Whether this replica takes part in kopf peering."""
        return bool(self.settings.peering_name) and not self.settings.standalone

    def active(self) -> bool:
        """Whether kopf would let this replica handle objects now (see :mod:`.decide.peers`)."""
        if not self.peering:
            return True
        namespace = None if not self.settings.namespaces else self.settings.namespaces[0]
        try:
            body = resources.get_peering(
                self.keeper.api, str(self.settings.peering_name), namespace
            )
        except errors.NotFound:
            return True  # kopf runs without a peering object too
        status = body.get("status") or {}
        return peers.active(status, self.identity, self.settings.priority, self.state.clock())

    def close(self) -> None:
        """Stop the workers' own threads (the investigator's)."""
        self.investigator.close()

    def housekeep(self, by_policy: Mapping[str, Sequence[DetectionRecord]]) -> bool:
        """One housekeeping round if this replica is active; False when it stood by."""
        if not self.active():
            return False
        self.keeper.housekeep(by_policy)
        self.blocker.refresh(self.state.policies.names())
        return True

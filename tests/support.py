"""What every test layer shares: waiting for a condition, and MinerPolicies to test with.

One :func:`wait_for` serves every poll in the suites (an emulator's watch, a server coming up,
a process, a real cluster). One builder makes a MinerPolicy in the three forms the tests need:
:func:`policy_document` is the object as the API server and a policy file hold it;
:func:`policy` compiles that document through the reader the components use;
:func:`create_policy` posts it to a cluster. Only the standard library and ``minerguard`` are
imported here, so unit tests stay quick and pure.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol, TypeVar

from minerguard.api import meta
from minerguard.api.policy import MinerPolicy
from minerguard.compiled_policy import CompiledPolicy, compile_policy, parse_policy

T = TypeVar("T")

POLICY_NAME = "guard"
"""The name a test policy gets unless the test names it."""


def wait_for(
    condition: Callable[[], T | None],
    timeout: float = 10.0,
    *,
    what: str | Callable[[], str] = "the condition",
    interval: float = 0.05,
) -> T:
    """Call ``condition`` until it returns something truthy, and return that.

    Fails the test, naming ``what``, once ``timeout`` seconds have passed; the condition is
    tried at least once, and once more at the deadline. ``what`` may be a function, called
    only on failure, so the message can show the state at the deadline (what was seen so far).
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            named = what() if callable(what) else what
            raise AssertionError(f"timed out after {timeout:g} s waiting for {named}")
        time.sleep(interval)


def policy_document(
    name: str = POLICY_NAME, *, status: Mapping[str, Any] | None = None, **spec: Any
) -> dict[str, Any]:
    """A MinerPolicy object with ``spec`` (camelCase keys, as in YAML), and ``status`` if given."""
    document: dict[str, Any] = {
        "apiVersion": meta.API_VERSION,
        "kind": MinerPolicy.kind,
        "metadata": {"name": name},
        "spec": spec,
    }
    if status is not None:
        document["status"] = dict(status)
    return document


def policy(
    name: str = POLICY_NAME, *, status: Mapping[str, Any] | None = None, **spec: Any
) -> CompiledPolicy:
    """The policy compiled as a component compiles it; raises ``PolicyError`` as they do."""
    return compile_policy(parse_policy(policy_document(name, status=status, **spec), name))


class CustomObjects(Protocol):
    """The part of the client's ``CustomObjectsApi`` that :func:`create_policy` uses."""

    def create_cluster_custom_object(
        self, group: str, version: str, plural: str, body: dict[str, Any]
    ) -> object: ...


def create_policy(custom: CustomObjects, name: str = POLICY_NAME, **spec: Any) -> dict[str, Any]:
    """Create the policy in a cluster (or the emulator) and return the object the API answered."""
    body = policy_document(name, **spec)
    created = custom.create_cluster_custom_object(
        meta.GROUP, meta.VERSION, MinerPolicy.plural, body
    )
    assert isinstance(created, dict), created
    return created

"""What every test layer shares: waiting for a condition, and MinerPolicies to test with.

One :func:`wait_for` serves every poll in the suites (an emulator's watch, a server coming up,
a process, a real cluster). One builder makes a MinerPolicy in the three forms the tests need:
:func:`policy_document` is the object as the API server and a policy file hold it;
:func:`policy` compiles that document through the reader the components use;
:func:`create_policy` posts it to a cluster. And one converter turns a CRD's OpenAPI schema
into the strict JSON schema the tests validate objects with (:func:`json_schema`). Only the
standard library and ``minerguard`` are imported here, so unit tests stay quick and pure.
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

MONERO_WALLET = (
    "4AdUndXHHZ6cfufTMvppY6JwXNouMBzSkbLYfpAV5Usx3skxNg"
    "YeYTRj5UzqtReoS44qo9mtmXCqY45DJ852K5Jv2684Rge"
)
"""A real, checksum-valid Monero address (docs.getmonero.org's standard-address example).

A made-up wallet-shaped string fails its checksum and counts only as ``wallet-shaped``
(:mod:`minerguard.signatures.wallets`); tests that mean a miner's wallet use this one."""


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


def json_schema(node: Any) -> Any:
    """Turn a structural OpenAPI v3 schema (a CRD's) into a strict JSON schema (draft 7).

    `nullable` becomes a null type; objects with `properties` and neither `additionalProperties`
    nor `x-kubernetes-preserve-unknown-fields` refuse unknown fields (the API server would prune
    them silently, which in a policy means a setting that never takes effect).
    """
    if isinstance(node, list):
        return [json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: json_schema(value) for key, value in node.items()}
    if out.pop("nullable", False) and "type" in out:
        out["type"] = [out["type"], "null"]
    if out.pop("x-kubernetes-int-or-string", False):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    for bound in ("Minimum", "Maximum"):
        if out.get(f"exclusive{bound}") is True:
            out[f"exclusive{bound}"] = out.pop(bound.lower())
        elif out.get(f"exclusive{bound}") is False:
            del out[f"exclusive{bound}"]
    if (
        "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out

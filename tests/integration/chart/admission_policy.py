"""A rendered ValidatingAdmissionPolicy, evaluated as the API server does, for the chart tests.

The policies' CEL (variables, validations, message expressions) runs in cel-python, a real CEL
implementation, against the `request`, `object` and `oldObject` the API server would pass
(`oldObject` is null on CREATE). A request the policy's `matchConstraints` do not cover is
allowed without evaluation, as the API server never sends it to the policy.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import celpy
from celpy import adapter, celtypes

NODE_NAME_KEY = "authentication.kubernetes.io/node-name"
SERVICE_ACCOUNT_GROUPS = ("system:serviceaccounts", "system:authenticated")


@dataclasses.dataclass(frozen=True)
class Verdict:
    """What the API server would answer: allowed, or the messages of the failed validations."""

    allowed: bool
    messages: tuple[str, ...]


class AdmissionPolicy:
    """A rendered ValidatingAdmissionPolicy, evaluated as the API server does."""

    def __init__(self, policy: dict[str, Any]) -> None:
        self.spec = policy["spec"]
        self._env = celpy.Environment()
        self._variables = [
            (v["name"], self._program(v["expression"])) for v in self.spec.get("variables", [])
        ]
        self._validations = [
            (self._program(v["expression"]), self._program(v["messageExpression"]))
            for v in self.spec["validations"]
        ]

    def _program(self, expression: str) -> Any:
        return self._env.program(self._env.compile(expression))

    def matches(self, operation: str, group: str, resource: str) -> bool:
        """Whether a request for `resource` (plural or plural/sub) is sent to the policy."""
        return any(
            operation in rule["operations"]
            and group in rule["apiGroups"]
            and resource in rule["resources"]
            for rule in self.spec["matchConstraints"]["resourceRules"]
        )

    def evaluate(
        self,
        *,
        operation: str,
        username: str,
        obj: dict[str, Any],
        old: dict[str, Any] | None = None,
        sub_resource: str = "",
        groups: tuple[str, ...] = SERVICE_ACCOUNT_GROUPS,
        node: str | None = None,
        resource: tuple[str, str, str] = ("minerguard.io", "v1alpha1", "minerdetections"),
    ) -> Verdict:
        """Evaluate every validation for one request; refused when any is false.

        `resource` is (group, version, plural); `sub_resource` e.g. "status".
        """
        group, version, plural = resource
        full = plural + (f"/{sub_resource}" if sub_resource else "")
        if not self.matches(operation, group, full):
            return Verdict(True, ())
        user: dict[str, Any] = {"username": username, "groups": list(groups)}
        if node is not None:
            user["extra"] = {NODE_NAME_KEY: [node]}
        request = {
            "operation": operation,
            "subResource": sub_resource,
            "resource": {"group": group, "version": version, "resource": plural},
            "namespace": obj["metadata"].get("namespace", ""),
            "userInfo": user,
        }
        activation: dict[str, Any] = {
            "request": adapter.json_to_cel(request),
            "object": adapter.json_to_cel(obj),
            "oldObject": adapter.json_to_cel(old),
        }
        variables = celtypes.MapType()
        activation["variables"] = variables
        for name, program in self._variables:
            variables[celtypes.StringType(name)] = program.evaluate(activation)
        failed = []
        for check, message in self._validations:
            result = check.evaluate(activation)
            assert isinstance(result, celtypes.BoolType), f"not a bool: {result!r}"
            if not result:
                failed.append(str(message.evaluate(activation)))
        return Verdict(not failed, tuple(failed))

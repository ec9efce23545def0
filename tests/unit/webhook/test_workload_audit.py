"""The audit trail of a workload CRD and of the system namespaces' entry.

A refused Argo Workflow is recorded with the Workflow as its owner (its own apiVersion, not
``v1``), so a responder sees what to stop; a refusal by the system entry says so in a label.
"""

from __future__ import annotations

from typing import Any

from minerguard import workloads
from minerguard.compiled_policy import default_policy
from minerguard.oci import registry
from tests.unit.webhook.helpers import (
    CLOSED,
    MINER_COMMAND,
    Sink,
    container,
    pod,
    request,
    reviewer,
)
from webhook import memo, resolve
from webhook.admission import Reviewer
from webhook.settings import WebhookSettings

WALLET = "49ziYBCuc6bwRRpC2i57UiJo8kt4KNWjM34qJ4XuxqdGDvzoXe8ohMtTSaQyeiyTSo4bZvh" + (
    "aHLL94NkSYksnFJ1tUxWhZqb"
)
CONCLUSIVE = ["xmrig", "-o", "stratum+tcp://pool.supportxmr.com:3333", "-u", WALLET]


def workflow(command: list[str]) -> dict[str, Any]:
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"name": "wf", "namespace": "apps", "uid": "u-1"},
        "spec": {
            "entrypoint": "m",
            "templates": [{"name": "m", "container": {"image": "alpine", "command": command}}],
        },
    }


async def test_a_refused_workflow_is_recorded_with_the_workflow_as_owner() -> None:
    sink = Sink()
    judge = reviewer([default_policy()], sink=sink)
    req = request(
        workflow(MINER_COMMAND), kind="Workflow", group="argoproj.io", resource="workflows"
    )
    answer = await judge.review(req)
    assert not answer.allowed
    ((found, event),) = sink.items
    assert found is not None
    assert event is not None
    owner = found.spec.owner
    assert owner is not None
    assert (owner.api_version, owner.kind, owner.name) == ("argoproj.io/v1", "Workflow", "wf")
    assert event.involved.api_version == "argoproj.io/v1"


async def test_a_refusal_by_the_system_entry_is_labelled_and_annotated() -> None:
    sink = Sink()
    fixed = (default_policy(),)
    judge = Reviewer(
        WebhookSettings(),
        memo.SystemViews(memo.MemoPolicies(lambda: fixed)),
        resolve.ImageResolver(registry.RegistryClient(insecure=[CLOSED])),
        sink=sink,
        system=True,
    )
    mining = pod(container(image="alpine", command=CONCLUSIVE), namespace="kube-system")
    answer = await judge.review(request(mining, namespace="kube-system"))
    assert not answer.allowed
    assert answer.annotations["entry"] == "system-namespaces"
    ((found, _),) = sink.items
    assert found is not None
    assert found.metadata.labels["minerguard.io/entry"] == "system-namespaces"


async def test_a_workflow_padded_past_the_read_bound_is_refused_not_admitted() -> None:
    padding = [
        {"name": f"t{i}", "container": {"image": "alpine", "command": ["true"]}}
        for i in range(workloads.MAX_TEMPLATES)
    ]
    hidden = {"name": "last", "container": {"image": "alpine", "command": MINER_COMMAND}}
    obj = workflow(["true"])
    obj["spec"]["templates"] = [*padding, hidden]
    req = request(obj, kind="Workflow", group="argoproj.io", resource="workflows")
    answer = await reviewer([default_policy()]).review(req)
    assert not answer.allowed
    assert "not fully examined" in answer.message

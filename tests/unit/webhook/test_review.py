"""Parsing AdmissionReview requests and building responses."""

from __future__ import annotations

import orjson
import pytest

from tests.unit.webhook.helpers import body, container, pod
from webhook import review


def test_a_v1_review_is_parsed_and_its_object_left_as_json() -> None:
    obj = pod(container())
    parsed = review.parse(orjson.dumps(body(obj)))
    assert parsed.kind.kind == "Pod"
    assert parsed.operation == "CREATE"
    assert parsed.object == obj
    assert parsed.dry_run is False


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"{not json", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"apiVersion": "admission.k8s.io/v1beta1", "kind": "AdmissionReview"}', "v1beta1"),
        (b'{"apiVersion": "admission.k8s.io/v1", "kind": "Pod"}', "kind must be AdmissionReview"),
        (b'{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}', "request"),
        (
            b'{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",'
            b' "request": {"uid": ""}}',
            "request.uid",
        ),
        (
            b'{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",'
            b' "request": {"uid": "u", "kind": {"kind": "Pod"}}}',
            "request.operation",
        ),
        (b"", "not JSON"),
        (b"\xff\xfe\x00", "not JSON"),
    ],
)
def test_what_is_not_a_v1_review_is_refused_with_a_reason(raw: bytes, reason: str) -> None:
    with pytest.raises(review.ReviewError, match=reason.replace(".", r"\.")):
        review.parse(raw)


def test_a_deny_carries_a_403_status_and_the_uid() -> None:
    answer = orjson.loads(review.response("u-1", False, message="no"))
    assert answer["apiVersion"] == "admission.k8s.io/v1"
    assert answer["response"] == {
        "uid": "u-1",
        "allowed": False,
        "status": {"code": 403, "reason": "Forbidden", "message": "no"},
    }


def test_warnings_and_annotations_are_bounded() -> None:
    warnings = [f"w{i} " + "x" * 1000 for i in range(50)]
    answer = orjson.loads(
        review.response("u", True, warnings=warnings, annotations={"verdict": "v" * 10_000})
    )["response"]
    assert len(answer["warnings"]) == review.MAX_WARNINGS + 1
    assert all(len(w) <= review.MAX_WARNING_CHARS for w in answer["warnings"])
    assert "30 more warnings" in answer["warnings"][-1]
    assert len(answer["auditAnnotations"]["verdict"]) == review.MAX_ANNOTATION_CHARS

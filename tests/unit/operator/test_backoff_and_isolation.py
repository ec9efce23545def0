"""Retry waits (backoff, Retry-After), isolation's selector checks, and the release record."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from minerguard.kube import errors
from minerguard_operator.decide import backoff, isolation, marks


def test_the_wait_grows_exponentially_up_to_the_cap_with_jitter() -> None:
    low = [backoff.delay(n, jitter=lambda: 0.0) for n in range(10)]
    high = [backoff.delay(n, jitter=lambda: 1.0) for n in range(10)]
    assert low[:4] == [0.5, 1.0, 2.0, 4.0]
    assert high[:4] == [1.0, 2.0, 4.0, 8.0]
    assert max(high) == backoff.CAP_SECONDS
    assert backoff.delay(10_000, jitter=lambda: 1.0) == backoff.CAP_SECONDS


def test_the_wait_is_never_shorter_than_the_servers_retry_after() -> None:
    assert backoff.delay(0, 30.0, jitter=lambda: 1.0) == 30.0
    assert backoff.delay(8, 2.0, jitter=lambda: 1.0) == backoff.CAP_SECONDS


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("7", 7.0),
        (" 12 ", 12.0),
        (5, 5.0),
        ("Thu, 01 Jan 1970 00:01:40 GMT", 60.0),  # 100 s after epoch, "now" is 40
        ("Thu, 01 Jan 1970 00:00:00 GMT", 0.0),  # in the past: now
        ("99999999", errors.MAX_RETRY_AFTER),
        ("-3", None),
        ("soon", None),
        ("", None),
        (None, None),
        (True, None),
    ],
)
def test_retry_after_reads_seconds_and_http_dates(value: object, expected: float | None) -> None:
    assert errors.retry_after(value, now=40.0) == expected


class _Response:
    """What the client hands ``ApiException``: a status, a reason, headers and a body."""

    def __init__(self, status: int, headers: dict[str, str], body: dict[str, Any]) -> None:
        self.status, self.reason, self.headers = status, "Too Many Requests", headers
        self.data = json.dumps(body).encode()


def test_a_throttled_answer_carries_its_retry_after() -> None:
    header = ApiException(http_resp=_Response(429, {"Retry-After": "9"}, {"kind": "Status"}))
    details = ApiException(
        http_resp=_Response(503, {}, {"kind": "Status", "details": {"retryAfterSeconds": 4}})
    )
    none = ApiException(http_resp=_Response(500, {}, {"kind": "Status"}))
    assert errors.translate(header).retry_after == 9.0
    assert errors.translate(header).retryable
    assert errors.translate(details).retry_after == 4.0
    assert errors.translate(none).retry_after is None


LABELS = {"app": "web", "tier": "front", marks.ISOLATED: "u1"}


@pytest.mark.parametrize(
    ("selector", "selected"),
    [
        ({}, True),
        (None, False),
        ({"matchLabels": {"app": "web"}}, True),
        ({"matchLabels": {"app": "db"}}, False),
        ({"matchExpressions": [{"key": "app", "operator": "In", "values": ["web"]}]}, True),
        ({"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["web"]}]}, False),
        ({"matchExpressions": [{"key": "x", "operator": "NotIn", "values": ["y"]}]}, True),
        ({"matchExpressions": [{"key": "tier", "operator": "Exists"}]}, True),
        ({"matchExpressions": [{"key": "tier", "operator": "DoesNotExist"}]}, False),
        ({"matchExpressions": [{"key": "tier", "operator": "Weird"}]}, False),
    ],
)
def test_selectors_are_evaluated_as_the_network_plugin_does(selector: Any, selected: bool) -> None:
    assert isolation.selects(selector, LABELS) is selected


def test_only_policies_that_select_the_pod_and_allow_egress_undermine_isolation() -> None:
    def policy(name: str, **spec: Any) -> dict[str, Any]:
        return {"metadata": {"name": name}, "spec": spec}

    policies = [
        policy("own", podSelector={}, policyTypes=["Egress"], egress=[{}]),
        policy("allow-all", podSelector={}, policyTypes=["Egress"], egress=[{}]),
        policy("implicit-egress", podSelector={"matchLabels": {"app": "web"}}, egress=[{}]),
        policy("deny-all", podSelector={}, policyTypes=["Egress"], egress=[]),
        policy("ingress-only", podSelector={}, policyTypes=["Ingress"], ingress=[{}]),
        policy("other-pods", podSelector={"matchLabels": {"app": "db"}}, egress=[{}]),
        policy("types-without-egress", podSelector={}, policyTypes=["Ingress"], egress=[{}]),
    ]
    assert isolation.undermining(policies, LABELS, "own") == ["allow-all", "implicit-egress"]


def test_the_release_the_operator_records_reads_back() -> None:
    detail = marks.released_detail("NetworkPolicy/x", "ReplicaSet", "web-7d9f", "u-1")
    assert marks.parse_released(detail) == ("ReplicaSet", "web-7d9f", "u-1")
    assert marks.parse_released(f"{detail}; not guaranteed: why") == (
        "ReplicaSet",
        "web-7d9f",
        "u-1",
    )
    assert marks.parse_released("NetworkPolicy/x") is None

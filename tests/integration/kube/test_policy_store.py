"""The policy store follows MinerPolicy objects in the emulated cluster."""

import time
from collections.abc import Callable

from kubernetes import client as k8s

from minerguard.kube import client
from minerguard.kube.policy_store import PolicyStore
from minerguard.policy import default_policy
from tests.kube_emulator import EmulatorThread


def wait_for(condition: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def body(name: str, **spec: object) -> dict[str, object]:
    return {
        "apiVersion": "minerguard.io/v1alpha1",
        "kind": "MinerPolicy",
        "metadata": {"name": name},
        "spec": spec,
    }


def test_policies_are_compiled_swapped_and_broken_ones_reported(kube: EmulatorThread) -> None:
    api = k8s.CustomObjectsApi(client.api_client(kube.url))
    create = api.create_cluster_custom_object
    create("minerguard.io", "v1alpha1", "minerpolicies", body("first", mode="Audit"))
    fallback = [default_policy()]
    store = PolicyStore(lambda: client.api_client(kube.url), fallback, watch_timeout=3).start()
    try:
        assert store.synced.wait(10)
        assert [p.name for p in store.policies] == ["first"]

        create(
            "minerguard.io",
            "v1alpha1",
            "minerpolicies",
            body("second", signatures={"poolHosts": ["pool.corp.example"]}),
        )
        wait_for(lambda: [p.name for p in store.policies] == ["first", "second"])

        create(
            "minerguard.io",
            "v1alpha1",
            "minerpolicies",
            body("broken", signatures={"argumentPatterns": ["(x"]}),
        )
        wait_for(lambda: "broken" in store.errors)
        assert "argumentPatterns[0]" in store.errors["broken"]
        assert [p.name for p in store.policies] == ["first", "second"]

        for name in ("first", "second", "broken"):
            api.delete_cluster_custom_object("minerguard.io", "v1alpha1", "minerpolicies", name)
        wait_for(lambda: store.policies == tuple(fallback))
    finally:
        store.stop(1)


def test_an_unreachable_api_keeps_the_fallback() -> None:
    fallback = [default_policy()]
    store = PolicyStore(lambda: client.api_client("http://127.0.0.1:9"), fallback).start()
    try:
        time.sleep(0.3)
        assert store.policies == tuple(fallback)
        assert not store.synced.is_set()
    finally:
        store.stop(1)

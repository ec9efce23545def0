"""Images: known miner accounts, repositories named after miners, typosquatted namespaces.

The heuristics are measured for false positives on ``tests/data/popular_images.txt`` (real
references to the most used images, provenance in its header): none of them may score at all.
"""

from pathlib import Path

import pytest

from minerguard.signatures import bundle, engine, image_names
from minerguard.signatures.bundle import Entry, Kind
from minerguard.signatures.engine import Subject

POPULAR = Path(__file__).resolve().parents[2] / "data" / "popular_images.txt"


def popular() -> list[str]:
    lines = (line.strip() for line in POPULAR.read_text().splitlines())
    return [line for line in lines if line and not line.startswith("#")]


@pytest.fixture(scope="module")
def builtin() -> engine.Engine:
    return engine.compile_entries(bundle.builtin().signatures)


def judge(eng: engine.Engine, image: str) -> engine.Verdict:
    return eng.evaluate(Subject(argv=(), image=image))


def test_no_popular_image_scores_at_all(builtin: engine.Engine) -> None:
    images = popular()
    assert len(images) >= 300
    assert len(set(images)) == len(images)
    scored = [(image, judge(builtin, image).summary()) for image in images]
    flagged = [(image, why) for image, why in scored if why]
    print(f"\npopular images: {len(flagged)}/{len(images)} scored by the image heuristics")
    assert flagged == []


@pytest.mark.parametrize(
    "image",
    [
        "021982/xmrig:latest",
        "docker.io/021982/155_138",
        "dockerxmrig/proxy2:latest",
        "ggcloud1/ggcloud",
        "delbidaluan/epicx:latest",
        "docker.io/vibersastra/golang",
        "ddsfdfsaadfs/dfsdf:99",
        "pauseyyf/pause:latest",
        "kuberntesio/kube-controller:1.0.1",
    ],
)
def test_images_of_accounts_public_reports_name_are_denied(
    builtin: engine.Engine, image: str
) -> None:
    verdict = judge(builtin, image)
    assert verdict.matched
    assert "miner-image" in {s.name for s in verdict.signals}


@pytest.mark.parametrize(
    "image",
    [
        "someone/xmrig:6.21.0",
        "quay.io/anon/cpuminer-opt:v3.23",
        "ghcr.io/a/xmrig-docker:latest",
        "docker.io/minerboy/srbminer-multi:2.4.2",
        "registry.example.com/team/XMRig-CUDA-12",
        "x/docker-xmrig-proxy",
        "y/lolminer_gpu",
        "z/t-rex",
    ],
)
def test_a_repository_named_after_a_miner_is_denied(builtin: engine.Engine, image: str) -> None:
    verdict = judge(builtin, image)
    assert verdict.matched
    assert "image-name" in {s.name for s in verdict.signals}


@pytest.mark.parametrize(
    "image",
    [
        "someone/xmrig-exporter",
        "grafana-dashboards/xmrig-dashboard",
        "itzg/minecraft-server",
        "ghcr.io/prismarinejs/mineflayer",
        "monero/monerod",
        "xmrig/docs-site",
    ],
)
def test_tools_about_miners_and_look_alike_words_are_not_miner_names(
    builtin: engine.Engine, image: str
) -> None:
    assert "image-name" not in {s.name for s in judge(builtin, image).signals}


@pytest.mark.parametrize(
    ("image", "imitated"),
    [
        ("docker.io/bitnamii/redis:7.2", "bitnami"),
        ("docker.io/ubuntuu/ubuntu", "ubuntu"),
        ("docker.io/k8sgcr/kube-proxy:v1.28.2", "k8s.gcr.io"),
        ("kubernetess/pause", "kubernetes"),
        ("kubernets/pause", "kubernetes"),
        ("bltnami/postgresql", "bitnami"),
        ("bitnarni/postgresql", "bitnami"),
        ("bit-nami/postgresql", "bitnami"),
        ("bitanmi/postgresql", "bitnami"),
        ("grafanna/grafana", "grafana"),
        ("k8ss/kube-proxy", "k8s"),
        ("pr0m/prometheus", "prom"),
        ("librarry/nginx", "library"),
        ("quay.io/jetsttack/cert-manager-controller", "jetstack"),
        ("docker.io/bitn\u0430mi/redis", "bitnami"),  # a Cyrillic a
        ("kuberntesio/kube-proxy", "kubernetes.io"),
        ("k8s-gcr-io/pause", "k8s.gcr.io"),
    ],
)
def test_a_namespace_imitating_a_well_known_one_is_denied(
    builtin: engine.Engine, image: str, imitated: str
) -> None:
    verdict = judge(builtin, image)
    assert verdict.matched
    found = [s for s in verdict.signals if s.name == "image-typosquat"]
    assert found
    assert f"imitates {imitated!r}" in found[0].detail


@pytest.mark.parametrize(
    "image",
    [
        "kubernetesui/dashboard",
        "k3s/k3s",
        "prow/hook",
        "nginxinc/nginx-unprivileged",
        "bitnamicharts/redis",
        "postgis/postgis",
        "mcr.microsoft.com/mssql/server",
        "rancher/k3s",
        "registry.example.com/k8s-gcr-io/pause",
        "harbor.corp.internal/bitnamii/redis",
    ],
)
def test_real_namespaces_near_a_protected_one_are_not_typosquats(
    builtin: engine.Engine, image: str
) -> None:
    assert "image-typosquat" not in {s.name for s in judge(builtin, image).signals}


def test_a_policys_own_binary_names_extend_the_image_name_heuristic() -> None:
    own = Entry(id="mine", kind=Kind.BINARY, value="quietminer", weight=0.5, source="policy")
    eng = engine.compile_entries([own])
    assert "image-name" in {s.name for s in judge(eng, "x/quietminer-docker").signals}


def test_a_transposition_is_one_edit_and_the_distance_stops_at_its_limit() -> None:
    assert image_names.distance("bitanmi", "bitnami", 2) == 1
    assert image_names.distance("kubernetes", "kubernetesui", 2) == 2
    assert image_names.distance("a" * 100, "b" * 100, 2) == 3


def test_huge_or_odd_image_references_are_judged_without_raising(builtin: engine.Engine) -> None:
    for image in ["/" * 10_000, "a/" * 5_000 + "xmrig", ":" * 100, "@sha256:", "\u0430" * 4096, ""]:
        judge(builtin, image)

import pytest

from minerguard import images, podspec
from minerguard.errors import UnsupportedObjectError

IMAGE = podspec.ImageConfig(entrypoint=("/ep",), cmd=("--cmd",), env=(("A", "img"), ("B", "b")))


def declared(command: list[str] | None = None, args: list[str] | None = None) -> podspec.Container:
    raw: dict[str, object] = {"name": "c", "image": "x"}
    if command is not None:
        raw["command"] = command
    if args is not None:
        raw["args"] = args
    return podspec.container(raw, podspec.ContainerKind.CONTAINER)


@pytest.mark.parametrize(
    ("command", "args", "expected"),
    [
        (None, None, ("/ep", "--cmd")),  # neither: both from the image
        (None, ["--mine"], ("/ep", "--mine")),  # args alone: entrypoint kept, Cmd replaced
        (["/bin/run"], None, ("/bin/run",)),  # command: entrypoint replaced, Cmd dropped
        (["/bin/run"], ["x"], ("/bin/run", "x")),
    ],
)
def test_effective_argv_follows_kubernetes_rules(
    command: list[str] | None, args: list[str] | None, expected: tuple[str, ...]
) -> None:
    assert podspec.effective_argv(declared(command, args), IMAGE) == expected


def test_var_references_expand_from_earlier_pod_env_only() -> None:
    raw = {
        "name": "c",
        "image": "x",
        "command": ["run", "$(A)", "$(POOL)", "$$(POOL)", "$(MISSING)"],
        "env": [
            {"name": "H", "value": "pool.example"},
            {"name": "POOL", "value": "$(H):$(B)"},
            {"name": "S", "valueFrom": {}},
        ],
    }
    container = podspec.container(raw, podspec.ContainerKind.CONTAINER)
    # $(A) and $(B) are the image's ENV, which the kubelet does not expand.
    assert podspec.effective_argv(container, IMAGE) == (
        "run",
        "$(A)",
        "pool.example:$(B)",
        "$(POOL)",
        "$(MISSING)",
    )
    assert dict(podspec.effective_env(container, IMAGE))["A"] == "img"
    assert dict(podspec.effective_env(container, IMAGE))["S"] == ""


@pytest.mark.parametrize(
    ("kind", "spec"),
    [
        ("Pod", {"spec": {"containers": [{"name": "a"}]}}),
        ("Deployment", {"spec": {"template": {"spec": {"containers": [{"name": "a"}]}}}}),
        (
            "CronJob",
            {
                "spec": {
                    "jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "a"}]}}}}
                }
            },
        ),
    ],
)
def test_every_workload_kind_yields_its_pod_template(kind: str, spec: dict[str, object]) -> None:
    template = podspec.template({"kind": kind, **spec})
    assert [c.name for c in template.containers] == ["a"]


def test_init_and_ephemeral_containers_are_included() -> None:
    obj = {
        "kind": "Pod",
        "spec": {
            "containers": [{"name": "a"}],
            "initContainers": [{"name": "i"}],
            "ephemeralContainers": [{"name": "e"}],
            "imagePullSecrets": [{"name": "regcred"}],
        },
    }
    template = podspec.template(obj)
    assert [(c.name, c.kind.value) for c in template.containers] == [
        ("a", "containers"),
        ("i", "initContainers"),
        ("e", "ephemeralContainers"),
    ]
    assert template.image_pull_secrets == ("regcred",)


def test_other_kinds_are_refused() -> None:
    with pytest.raises(UnsupportedObjectError):
        podspec.template({"kind": "Service", "spec": {}})


@pytest.mark.parametrize(
    ("ref", "name", "reference"),
    [
        ("nginx", "docker.io/library/nginx", "latest"),
        ("metal3d/xmrig:6.21", "docker.io/metal3d/xmrig", "6.21"),
        ("localhost:5000/a/b@sha256:ab", "localhost:5000/a/b", "sha256:ab"),
        ("ghcr.io/o/r:1", "ghcr.io/o/r", "1"),
        ("index.docker.io/library/alpine", "docker.io/library/alpine", "latest"),
    ],
)
def test_image_references_parse_like_the_runtime(ref: str, name: str, reference: str) -> None:
    parsed = images.parse(ref)
    assert (parsed.name, parsed.reference) == (name, reference)


def test_the_images_own_entrypoint_is_not_expanded() -> None:
    image = podspec.ImageConfig(entrypoint=("/bin/run", "$(HOME)"), cmd=())
    raw = {"name": "c", "image": "x", "env": [{"name": "HOME", "value": "/root"}]}
    container = podspec.container(raw, podspec.ContainerKind.CONTAINER)
    assert podspec.effective_argv(container, image) == ("/bin/run", "$(HOME)")


@pytest.mark.parametrize(
    ("image_id", "digest"),
    [
        ("docker.io/library/nginx@sha256:ab12", "sha256:ab12"),
        ("docker-pullable://nginx@sha256:ab12", "sha256:ab12"),
        ("sha256:ab12", "sha256:ab12"),
        ("docker://nginx:1.27", None),
        ("", None),
        (None, None),
    ],
)
def test_the_digest_is_read_from_the_image_id_the_kubelet_reports(
    image_id: str | None, digest: str | None
) -> None:
    assert images.digest_of(image_id) == digest

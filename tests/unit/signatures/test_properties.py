"""Property tests: the engine and scan never raise, whatever the input."""

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from minerguard import podspec
from minerguard.compiled_policy import default_policy
from minerguard.signatures import normalise
from minerguard.signatures.engine import Subject

POLICY = default_policy()
texts = st.text(alphabet=st.characters(codec="utf-8"), max_size=300)
shellish = st.text(alphabet="xmrig -o=:/'\"\\|;&$()`\n\t4AB+stratum.pool", max_size=200)
words = st.lists(st.one_of(texts, shellish), max_size=8)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(
    argv=words,
    env=st.lists(st.tuples(texts, st.one_of(texts, shellish)), max_size=4),
    image=st.one_of(st.none(), texts),
    files=st.lists(texts, max_size=2),
)
def test_the_engine_never_raises(
    argv: list[str], env: list[tuple[str, str]], image: str | None, files: list[str]
) -> None:
    verdict = POLICY.engine.evaluate(
        Subject(argv=tuple(argv), env=tuple(env), image=image, texts=tuple(files))
    )
    assert (verdict.score > 0) == bool(verdict.signals)  # evidence scores, nothing else does
    assert verdict.score <= sum(s.weight for s in verdict.signals) + 0.001  # caps only lower it
    assert verdict.matched == (verdict.score >= 1.0)


@settings(max_examples=300, deadline=None)
@given(script=st.one_of(texts, shellish))
def test_shell_splitting_never_raises(script: str) -> None:
    for command in normalise.shell_commands(script):
        assert command


@settings(max_examples=200, deadline=None)
@given(
    raw=st.recursive(
        st.one_of(st.none(), st.booleans(), st.integers(), texts),
        lambda children: st.one_of(
            st.lists(children, max_size=3),
            st.dictionaries(
                st.sampled_from(
                    [
                        "command",
                        "args",
                        "env",
                        "name",
                        "value",
                        "image",
                        "containers",
                        "initContainers",
                        "spec",
                        "template",
                    ]
                ),
                children,
                max_size=4,
            ),
        ),
        max_leaves=20,
    )
)
def test_reading_containers_never_raises_on_arbitrary_pod_specs(raw: object) -> None:
    obj = {"kind": "Pod", "metadata": {}, "spec": {"containers": [raw] if raw else []}}
    for container in podspec.template(obj).containers:
        podspec.effective_argv(container, None)

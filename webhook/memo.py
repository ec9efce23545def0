"""Memoised evaluation: replicas of one template cost one evaluation.

Most admission traffic is the same containers over and over (every replica, every rollout,
every Deployment and the ReplicaSet and pods it makes). The engine is a pure function of the
:class:`Subject` (a frozen, hashable dataclass), so its verdicts are kept in a bounded cache per
compiled policy. Decisions stay with :func:`minerguard.evaluate.evaluate_containers`:
exemptions and quarantine are applied there, around the engine, on every request. Subjects
larger than :data:`MAX_SUBJECT_CHARS` are evaluated every time, so a hostile stream of huge
objects cannot grow the memory held here beyond ``size * MAX_SUBJECT_CHARS``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence

from minerguard import podspec
from minerguard.cache import BoundedCache
from minerguard.compiled_policy import CompiledPolicy
from minerguard.evaluate import Decision, evaluate_containers
from minerguard.signatures import engine
from minerguard.signatures.bundle import Entry
from minerguard.signatures.engine import Evaluator, Subject, Verdict

MAX_SUBJECT_CHARS = 4096


def _size(subject: Subject) -> int:
    total = sum(len(a) for a in subject.argv) + len(subject.image or "")
    total += sum(len(k) + len(v) for k, v in subject.env)
    return total + sum(len(t) for t in subject.texts) + len(subject.executable or "")


class MemoEngine:
    """An :class:`~minerguard.signatures.engine.Evaluator` that remembers verdicts."""

    def __init__(self, inner: Evaluator, size: int = 2048) -> None:
        self.inner = inner
        self._verdicts: BoundedCache[Subject, Verdict] = BoundedCache(size)
        self.hits = 0

    @property
    def entries(self) -> tuple[Entry, ...]:
        """The inner engine's entries."""
        return self.inner.entries

    def evaluate(self, subject: Subject) -> Verdict:
        """The inner engine's verdict, from memory when this subject was seen."""
        if _size(subject) > MAX_SUBJECT_CHARS:
            return self.inner.evaluate(subject)
        found = self._verdicts.get(subject)
        if found is not None:
            self.hits += 1
            return found
        verdict = self.inner.evaluate(subject)
        if not verdict.incomplete:  # cut by one review's budget: true for that review only
            self._verdicts.put(subject, verdict)
        return verdict


class MemoPolicies:
    """Wraps whatever policies are in force with memoising engines, rewrapping on change."""

    def __init__(self, source: Callable[[], Sequence[CompiledPolicy]], size: int = 2048) -> None:
        self._source = source
        self._size = size
        self._seen: Sequence[CompiledPolicy] | None = None
        self._wrapped: tuple[CompiledPolicy, ...] = ()

    def __call__(self) -> tuple[CompiledPolicy, ...]:
        """The current policies (a new generation gets fresh, empty memories)."""
        current = self._source()
        if current is not self._seen:
            self._wrapped = tuple(
                dataclasses.replace(p, engine=MemoEngine(p.engine, self._size)) for p in current
            )
            self._seen = current
        return self._wrapped


def _container_chars(container: podspec.Container) -> int:
    total = len(container.image) + len(container.name)
    total += sum(len(a) for a in container.command or ()) + sum(
        len(a) for a in container.args or ()
    )
    total += sum(len(e.origin) + sum(len(a) for a in e.command) for e in container.execs)
    total += sum(len(path) + len(text) for path, text in container.files)
    return total + sum(len(k) + len(v) for k, v in container.env)


DecisionKey = tuple[object, ...]


class DecisionMemo:
    """Whole decisions by their inputs, for one generation of policies.

    A decision depends only on the containers (their probes and hooks included: they are part
    of :class:`~minerguard.podspec.Container`, so of the key), the pod and namespace labels, the
    namespace, the image configs they resolved to and the policies; the same inputs (every
    replica of a template) get the same :class:`Decision` object back. Cleared when the
    policies change.
    """

    def __init__(self, size: int = 1024) -> None:
        self._policies: object = None
        self._decisions: BoundedCache[DecisionKey, Decision] = BoundedCache(size)
        self.hits = 0

    def decide(
        self,
        *,
        containers: tuple[podspec.Container, ...],
        labels: Mapping[str, str],
        namespace: str | None,
        namespace_labels: Mapping[str, str],
        policies: tuple[CompiledPolicy, ...],
        configs: Mapping[str, podspec.ImageConfig],
        errors: Mapping[str, str],
    ) -> Decision:
        """The decision of :func:`evaluate_containers` for these inputs, remembered."""
        if policies is not self._policies:
            self._decisions.clear()
            self._policies = policies
        small = not errors and sum(_container_chars(c) for c in containers) <= MAX_SUBJECT_CHARS
        key: DecisionKey = ()
        if small:
            key = (
                containers,
                tuple(labels.items()),
                namespace,
                tuple(namespace_labels.items()),
                tuple(configs.items()),
            )
            found = self._decisions.get(key)
            if found is not None:
                self.hits += 1
                return found
        decision = evaluate_containers(
            containers,
            labels,
            namespace,
            namespace_labels,
            policies,
            image_configs=configs,
            image_errors=errors,
        )
        if small and not engine.budget_cut():  # a cut review's decision holds for it alone
            self._decisions.put(key, decision)
        return decision


class SystemViews:
    """The policies in force as their system views (:meth:`CompiledPolicy.system_view`).

    What the system namespaces' entry judges with: each policy over the namespaces it
    excludes, denying only conclusive evidence; policies that ask for no admission there are
    left out. Rebuilt only when the underlying generation changes; the views share the
    policies' memoising engines.
    """

    def __init__(self, source: Callable[[], Sequence[CompiledPolicy]]) -> None:
        self._source = source
        self._seen: Sequence[CompiledPolicy] | None = None
        self._views: tuple[CompiledPolicy, ...] = ()

    def __call__(self) -> tuple[CompiledPolicy, ...]:
        """The current policies' admission views."""
        current = self._source()
        if current is not self._seen:
            views = (p.system_view("admission") for p in current)
            self._views = tuple(v for v in views if v is not None)
            self._seen = current
        return self._views

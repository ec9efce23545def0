"""The signature engine: weighted evidence from what a process or container will run.

Evidence is weighted, never binary. Each entry carries a weight and each kind of evidence is
capped, so a miner's binary name alone, a wallet-shaped string alone, a pool port alone or
the word "pool" can never reach the deny threshold; combinations do (a stratum URL, a set of
miner options, a known miner image, a pool host with its port, a miner binary with a wallet).

Cost is flat in the number of signatures: literal kinds are hash lookups per token (pool
hosts per domain label), and every regular expression of a policy runs in one RE2 set pass
over the normalised text, in time linear in the input whatever the pattern.

Linear is not enough where one caller judges text an attacker sizes: the webhook judges a
review of up to several MiB on a worker every other review shares. It sets a per-review
:class:`Budget` with :func:`budget` (words looked at one by one, characters normalised and
scanned); what lies past it is not looked at, and the budget says it was cut so the caller
can say so. Without a budget (the agent, ``minerguard scan``) everything is judged.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Iterable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

import re2

from minerguard import images
from minerguard.errors import MinerguardError
from minerguard.signatures import bundle, image_names, interpreters, normalise, shell, wallets
from minerguard.signatures.bundle import Entry, ImageHeuristics, Kind, Scoring

THRESHOLD = 1.0
"""Score at which signature evidence is a match."""

SIGNAL_NAMES: dict[Kind, str] = bundle.KIND_SIGNALS
"""The signal each kind's hits count as (an entry may name its own, ``Entry.signal``)."""

WALLET_SHAPED = "wallet-shaped"
"""The signal of a wallet-shaped token whose checksum fails."""
_LOOPBACK_NAMES = frozenset({"localhost", "ip6-localhost", "::1", "0.0.0.0"})  # noqa: S104 - compared, never bound
POOL_URL_LOOPBACK = "pool-url-loopback"
"""The signal of a mining URL whose host is this machine."""
IMAGE_NAME = "image-name"
"""The signal of an image repository named after a miner."""
IMAGE_TYPOSQUAT = "image-typosquat"
"""The signal of an image namespace that imitates a well-known one."""
MAX_WALLET_CANDIDATES = 64
"""Distinct tokens of one wallet entry checksummed per evaluation (each costs a hash)."""

DROPPER = "dropper"
"""The signal of a remote script or binary fetched and run (installers do it too)."""
DROPPER_RAW_IP = "dropper-raw-ip"
"""The signal of a dropper fetching from a public IP address rather than a name."""
MINER_DOWNLOAD = "miner-download"
"""The signal of a dropper whose fetched file is named as a miner's binary or release."""
OBFUSCATED = "obfuscated-shell"
"""The signal of a payload too large or too deep to decode on its way into a shell."""
_ARCHIVE_SUFFIX = re.compile(
    r"(?:\.(?:tar\.gz|tar\.xz|tar\.bz2|tgz|txz|zip|tar|gz|xz|sh|bin|py|pl|elf|run))+$"
)
_RELEASE = re.compile(r"[-_.](?=v?[0-9]|linux|static|x86|x64|amd64|arm|aarch64|lin)")
"""Where a release file's name ends and its version and platform begin (xmrig-6.21.0-linux-...)."""

UNLISTED_CAP = 0.5
"""The cap of a signal the scoring table does not list (a test keeps this from happening)."""

_STRUCTURED = frozenset("{[")
_SPACE = re.compile(r"\s")
ALGO_OPTIONS = frozenset({"-a", "--algo", "--algorithm", "-algo", "--algorithms"})
MAX_PATTERN_CHARS = 1024
RE2_MAX_MEM = 64 << 20


class PatternError(MinerguardError):
    """A regular expression entry does not compile in RE2; ``entry_id`` names it."""

    def __init__(self, entry_id: str, message: str) -> None:
        super().__init__(f"{entry_id}: {message}")
        self.entry_id = entry_id
        self.message = message


@dataclass(frozen=True, slots=True)
class Subject:
    """What a container or process runs, as far as it is known."""

    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = ()
    image: str | None = None
    executable: str | None = None
    texts: tuple[str, ...] = ()
    text_names: tuple[str, ...] = ()
    """Where each of ``texts`` comes from (a mounted file's path), for the reasons."""


@dataclass(frozen=True, slots=True)
class Signal:
    """One piece of evidence."""

    name: str
    detail: str
    weight: float
    where: str
    signature: str

    def describe(self) -> str:
        """One line for a person."""
        return f"{self.detail} (in {self.where})"


@dataclass(frozen=True, slots=True)
class Verdict:
    """The evidence found and the score it adds up to."""

    score: float
    signals: tuple[Signal, ...]
    incomplete: bool = False
    """The review's :class:`Budget` ran out: part of the subject was not examined (such a
    verdict holds for this review only and must never be memoised)."""

    @property
    def matched(self) -> bool:
        """Whether the evidence reaches the threshold."""
        return self.score >= THRESHOLD

    def summary(self) -> str:
        """The signal names, strongest first, for one-line messages."""
        ordered = sorted(self.signals, key=lambda s: -s.weight)
        return ", ".join(dict.fromkeys(s.name for s in ordered))


CLEAN = Verdict(score=0.0, signals=())


def _reason(err: re2.error) -> str:
    first = err.args[0] if err.args else ""
    return first.decode("utf-8", "replace") if isinstance(first, bytes) else str(first)


def _new_set(case_sensitive: bool) -> re2.Set:
    options = re2.Options()
    options.max_mem = RE2_MAX_MEM
    options.log_errors = False
    options.case_sensitive = case_sensitive
    return re2.Set.SearchSet(options)


@dataclass
class PatternSet:
    """Regex entries compiled into one RE2 set, plus each alone to say where it matched."""

    case_sensitive: bool
    entries: list[Entry] = field(default_factory=list)
    singles: list[re2._Regexp] = field(default_factory=list)
    compiled: re2.Set | None = None

    def add(self, entry: Entry, pattern: str) -> None:
        """Compile one pattern alone (to report errors per entry) and into the set."""
        if len(entry.value) > MAX_PATTERN_CHARS:
            raise PatternError(entry.id, f"longer than {MAX_PATTERN_CHARS} characters")
        options = re2.Options()
        options.log_errors = False
        options.max_mem = RE2_MAX_MEM
        options.case_sensitive = self.case_sensitive
        try:
            self.singles.append(re2.compile(pattern, options))
        except re2.error as err:
            raise PatternError(entry.id, f"not a valid RE2 pattern: {_reason(err)}") from err
        if self.compiled is None:
            self.compiled = _new_set(self.case_sensitive)
        try:
            self.compiled.Add(pattern)
        except re2.error as err:
            raise PatternError(entry.id, f"rejected by RE2: {_reason(err)}") from err
        self.entries.append(entry)

    def finish(self) -> None:
        """Build the set's automaton; call once after the last :meth:`add`."""
        if self.compiled is None:
            return
        try:
            self.compiled.Compile()
        except re2.error as err:
            raise PatternError(self.entries[0].id, "patterns exceed RE2's memory budget") from err

    def search(self, haystack: str) -> list[int]:
        """Indexes of the entries that match somewhere in ``haystack``, in one pass."""
        if self.compiled is None:
            return []
        return list(self.compiled.Match(haystack) or ())


def compile_patterns(entries: Iterable[Entry], case_sensitive: bool = False) -> PatternSet:
    """A stand-alone pattern set (e.g. command exemptions); raises :class:`PatternError`."""
    patterns = PatternSet(case_sensitive=case_sensitive)
    for entry in entries:
        patterns.add(entry, entry.value)
    patterns.finish()
    return patterns


@dataclass(slots=True)
class Budget:
    """Work left to one review, shared by every container, policy and platform it judges.

    ``words``: command words, arguments and values examined one by one (~2 us each);
    ``chars``: characters of commands, environment values and files normalised, tokenised and
    scanned by the pattern pass. ``cut`` is set once either ran out: the review did not look
    at everything and must say so.
    """

    words: int
    chars: int
    cut: bool = False

    def text(self, text: str) -> str:
        """``text``, or as much of it as the character budget has left."""
        if len(text) <= self.chars:
            self.chars -= len(text)
            return text
        self.cut = True
        kept, self.chars = text[: self.chars], 0
        return kept

    def spend(self, words: int, cut: bool) -> None:
        """Charge ``words``; ``cut``: there were more than the budget let through."""
        self.words -= words
        self.cut = self.cut or cut


T = TypeVar("T")
_budget: ContextVar[Budget | None] = ContextVar("minerguard_engine_budget", default=None)


def budget_cut() -> bool:
    """Whether this context's review budget has run out (a decision then must not be kept)."""
    spent = _budget.get()
    return spent is not None and spent.cut


class budget:  # noqa: N801 - used as a function: ``with budget(words, chars) as spent:``
    """Bound the engine's work in this context (one review's task) to ``words``/``chars``.

    A class rather than ``@contextmanager``: it runs on every review, and costs a fifth.
    """

    __slots__ = ("spent", "token")

    def __init__(self, words: int, chars: int) -> None:
        self.spent = Budget(words, chars)

    def __enter__(self) -> Budget:
        self.token = _budget.set(self.spent)
        return self.spent

    def __exit__(self, *exc: object) -> None:
        _budget.reset(self.token)


class _Scan:
    """The state of one evaluation: hits so far, text for the regex pass, decode budget."""

    __slots__ = ("budget", "cut", "env", "hits", "limit", "pieces", "shell")

    def __init__(self) -> None:
        self.hits: dict[str, Signal] = {}
        self.pieces: list[normalise.Piece] = []
        self.budget = [normalise.MAX_DECODED_BYTES]
        self.limit = _budget.get()
        self.cut = False  # this evaluation left something unexamined
        self.shell: shell.Limits | None = None  # made on the first script, shared by all
        self.env: tuple[tuple[str, str], ...] = ()  # the variables scripts start with

    def text(self, text: str) -> str:
        """A field as far as the per-field cut and the review's budget allow."""
        text = text[: normalise.MAX_FIELD_CHARS]
        if self.limit is None:
            return text
        kept = self.limit.text(text)
        self.cut = self.cut or len(kept) < len(text)
        return kept

    def commands(self, script: str) -> list[list[str]]:
        """The simple commands of a shell script, as far as the review's budget allows."""
        if self.limit is None:
            return normalise.shell_commands(script)
        asked = max(self.limit.words, 0)
        found = normalise.shell_commands(script, asked) if asked else []
        produced = sum(len(c) for c in found)
        cut = produced >= asked and (asked > 0 or bool(script.strip()))
        self.limit.spend(produced, cut)
        self.cut = self.cut or cut
        return found

    def evaluate(self, script: str) -> shell.Result:
        """What a shell script runs, evaluated within this evaluation's shell bounds.

        All scripts of one evaluation share one :class:`shell.Limits` (so nesting cannot
        multiply them); with a review budget, the words parsed and the bytes decoded are
        charged to it, and the evaluator may not produce more than it has left.
        """
        limits = self.shell
        if limits is None:
            limits = self.shell = shell.Limits()
        env = self.env
        if self.limit is None:
            return shell.evaluate(script, limits, env)
        limits.words = max(self.limit.words, 0)
        limits.output = min(limits.output, max(self.limit.chars, 0))
        was_cut, limits.cut = limits.cut, False
        result = shell.evaluate(script, limits, env)
        cut = limits.cut or (limits.words == 0 and bool(script.strip()))
        self.limit.spend(result.words, cut)
        self.limit.chars = max(self.limit.chars - result.produced, 0)
        self.cut = self.cut or cut
        limits.cut = was_cut or limits.cut
        return result

    def items(self, items: tuple[T, ...]) -> tuple[T, ...]:
        """Arguments or variables, one word each, as far as the review's budget allows."""
        if self.limit is None:
            return items
        asked = max(self.limit.words, 0)
        kept = items[:asked]
        self.limit.spend(len(kept), len(items) > asked)
        self.cut = self.cut or len(items) > asked
        return kept

    def tokens(self, text: str) -> list[str]:
        """The tokens of free text, as far as the review's budget allows."""
        if self.limit is None:
            return normalise.text_tokens(text)
        asked = max(self.limit.words, 0)
        found = normalise.text_tokens(text, asked) if asked else []
        cut = len(found) >= asked and (asked > 0 or bool(text.strip()))
        self.limit.spend(len(found), cut)
        self.cut = self.cut or cut
        return found


class Evaluator(Protocol):
    """What a compiled policy judges with: an :class:`Engine`, or one wrapped (memoised)."""

    @property
    def entries(self) -> tuple[Entry, ...]:
        """The entries compiled in."""
        ...

    def evaluate(self, subject: Subject) -> Verdict:
        """The evidence in ``subject``; never raises."""
        ...


class Engine:
    """A compiled set of entries; build with :func:`compile_entries`, share freely."""

    def __init__(
        self,
        entries: Iterable[Entry],
        scoring: Scoring | None = None,
        image_rules: ImageHeuristics | None = None,
    ) -> None:
        self.entries: tuple[Entry, ...] = tuple(entries)
        self.scoring = bundle.builtin().scoring if scoring is None else scoring
        self._caps = self.scoring.caps
        image_rules = bundle.builtin().images if image_rules is None else image_rules
        self._literal: dict[Kind, dict[str, Entry]] = {
            kind: {} for kind in Kind if kind not in {Kind.WALLET, Kind.ARGUMENT, Kind.CONTENT}
        }
        self._wallets = PatternSet(case_sensitive=True)
        self._arguments = PatternSet(case_sensitive=False)
        for entry in self.entries:
            if entry.kind is Kind.WALLET:
                self._wallets.add(entry, rf"(?:^|[^0-9A-Za-z])(?:{entry.value})(?:[^0-9A-Za-z]|$)")
            elif entry.kind is Kind.ARGUMENT:
                self._arguments.add(entry, entry.value)
            elif entry.kind is Kind.CONTENT:
                continue  # executables' bytes: minerguard.signatures.content scans those
            else:
                key = entry.value.lower()
                if entry.kind is Kind.IMAGE:
                    key = images.parse(key).name
                self._literal[entry.kind].setdefault(key, entry)
        self._wallets.finish()
        self._arguments.finish()
        self._user_agents = tuple(self._literal[Kind.USER_AGENT])
        self._names = image_names.Heuristics.build(
            self._literal[Kind.BINARY],
            image_rules.packaging_words,
            (p.name for p in image_rules.protected),
            (a.name for a in image_rules.allowed),
            image_rules.public_registries,
        )
        self._texts = tuple(self._literal[Kind.TEXT].items())

    # -- evaluation -------------------------------------------------------------------------

    def evaluate(self, subject: Subject) -> Verdict:
        """Collect the evidence in ``subject``; never raises on any input."""
        scan = _Scan()
        scan.env = subject.env
        if subject.executable:
            self._binary(normalise.basename(subject.executable), "executable", scan)
        argv = [scan.text(arg) for arg in scan.items(subject.argv)]  # _command folds them
        if argv:
            self._command(argv, "command", scan, depth=0)
        for name, value in scan.items(subject.env):
            self._env(name, normalise.plain(scan.text(value)), scan)
        for index, text in enumerate(subject.texts):
            named = subject.text_names[index] if index < len(subject.text_names) else index
            self._text(normalise.plain(scan.text(text)), f"file {named}", scan)
        if subject.image:
            self._image(subject.image, scan)
        self._regexes(scan)
        if not scan.hits:
            return Verdict(0.0, (), incomplete=True) if scan.cut else CLEAN
        return self._score(scan)

    def _score(self, scan: _Scan) -> Verdict:
        """Capped sum per signal, then the bundle's combination rules, each once."""
        totals: dict[str, float] = {}
        for signal in scan.hits.values():
            totals[signal.name] = totals.get(signal.name, 0.0) + signal.weight
        caps = self._caps
        score = sum(min(total, caps.get(name, UNLISTED_CAP)) for name, total in totals.items())
        present = set(totals) | set(scan.hits)
        found = list(scan.hits.values())
        for rule in self.scoring.rules:
            if rule.fires(present):
                names = [n for n in rule.all_of + rule.any_of if n in present]
                detail = f"{rule.why} ({' + '.join(names)})"
                found.append(Signal(rule.id, detail, rule.weight, "combination", rule.id))
                present.add(rule.id)
                score += rule.weight
        signals = tuple(sorted(found, key=lambda s: (-s.weight, s.name)))
        return Verdict(score=round(score, 3), signals=signals, incomplete=scan.cut)

    def _hit(self, entry: Entry, detail: str, where: str, scan: _Scan) -> None:
        if entry.id not in scan.hits:
            name = entry.signal or SIGNAL_NAMES[entry.kind]
            scan.hits[entry.id] = Signal(name, detail, entry.weight, where, entry.id)

    def _named(self, key: str, name: str, detail: str, where: str, scan: _Scan) -> None:
        """A hit of a signal no single entry stands for (a heuristic); weighs its cap."""
        if key not in scan.hits:
            weight = self._caps.get(name, UNLISTED_CAP)
            scan.hits[key] = Signal(name, detail, weight, where, key)

    def _binary(self, name: str, where: str, scan: _Scan) -> None:
        entry = self._literal[Kind.BINARY].get(name)
        if entry is not None:
            self._hit(entry, f"executable {name!r} is a known miner", where, scan)
        entry = self._literal[Kind.CAMPAIGN_TOOL].get(name)
        if entry is not None:
            self._hit(entry, f"executable {name!r} is a known campaign's tool", where, scan)

    def _command(self, argv: list[str], where: str, scan: _Scan, depth: int) -> None:
        raw, argv = argv, [normalise.plain(word) for word in argv]
        shown, argv = argv, normalise.unwrap(argv)
        script = normalise.shell_script(argv) if argv else None
        if script is not None and depth < normalise.MAX_DEPTH:
            # The script's commands are pieces of their own, as the evaluator decodes them:
            # its text as written (encoded payloads, rot13'd words) is no command line.
            shown = [word for word in shown if word is not script]
        scan.pieces.append(normalise.Piece(" ".join(shown), where))
        if not argv:
            return
        if script is not None:
            if depth < normalise.MAX_DEPTH:
                # The script as written: decoders (tr, rev) act on its bytes before any folding.
                written = normalise.shell_script(normalise.unwrap(raw))
                self._script(written or script, where, scan, depth + 1, via="sh -c")
            return
        code = interpreters.one_liner(argv) if depth < normalise.MAX_DEPTH else None
        if code is not None:
            self._one_liner(argv, code, where, scan, depth)
            argv = argv[: code.index] + argv[code.index + 1 :]
        self._binary(normalise.basename(argv[0]), where, scan)
        options = self._literal[Kind.OPTION]
        algorithms = self._literal[Kind.ALGORITHM]
        for index in range(1, len(argv)):
            word = argv[index]
            if depth < normalise.MAX_DEPTH and _SPACE.search(word):
                self._script(word, where, scan, depth + 1)
                continue
            token = normalise.fold(word)
            if len(token) > 1 and token[0] == "-":
                name, equals, value = token.partition("=")
                entry = options.get(name)
                if entry is not None:
                    self._hit(entry, f"miner option {name}", where, scan)
                if name in ALGO_OPTIONS:
                    algo = value or (
                        normalise.fold(argv[index + 1]) if index + 1 < len(argv) else ""
                    )
                    found = algorithms.get(algo)
                    if found is not None:
                        self._hit(found, f"mining algorithm {algo!r}", where, scan)
                if equals:
                    self._value(value, where, scan)
            else:
                self._value(token, where, scan)
        if depth < normalise.MAX_DEPTH:
            for payload in normalise.base64_payloads(argv, scan.budget):
                self._script(payload, f"{where} (base64)", scan, depth + 1)

    def _script(
        self, text: str, where: str, scan: _Scan, depth: int, via: str | None = None
    ) -> None:
        """A shell script, evaluated by :mod:`shell`; what it runs is judged as commands.

        Each command is named by how it was decoded (``command (sh -c, hex)``); droppers and
        decodings cut at the evaluator's bounds on their way into a shell are signals.
        """
        result = scan.evaluate(text)
        for command in result.commands:
            how = ", ".join(filter(None, (via, *command.how)))
            self._command(list(command.argv), f"{where} ({how})" if how else where, scan, depth)
        for found in result.droppers:
            how = ", ".join(filter(None, (via, *found.how)))
            self._dropper(found, f"{where} ({how})" if how else where, scan)
        for written in result.files:  # echo '{"pools": ...}' > c.json; <<EOF; <(echo ...)
            how = ", ".join(filter(None, (via, *written.how, f"file {written.path}")))
            self._text(normalise.plain(written.text), f"{where} ({how})", scan)
        if result.obfuscated:
            detail = f"a shell payload the evaluator could not finish: {result.obfuscated[0]}"
            self._named("technique/obfuscated-shell", OBFUSCATED, detail, where, scan)

    def _dropper(self, found: shell.Dropper, where: str, scan: _Scan) -> None:
        """A remote script or binary fetched and run, weighed by what gives it away.

        Alone it is weak (installers do the same); the URL's host (a raw public IP, a
        campaign's domain) and the fetched file's name (a miner's release archive, a
        campaign's tooling) add their own signals, and the bundle's combination rules make a
        dropper with any mining signal a miner.
        """
        url = found.urls[0] if found.urls else ""
        detail = f"fetches {url[:60]!r} and runs it ({found.run})"
        self._named("technique/dropper", DROPPER, detail, where, scan)
        for link in found.urls:
            host = link.split("://", 1)[-1].split("/", 1)[0].rsplit("@", 1)[-1]
            self._endpoint(host, where, scan)
            if _raw_ip(host):
                detail = f"fetches from a raw IP address {host!r}"
                self._named("technique/dropper-raw-ip", DROPPER_RAW_IP, detail, where, scan)
        tools, binaries = self._literal[Kind.CAMPAIGN_TOOL], self._literal[Kind.BINARY]
        for name in found.names:
            stem = _ARCHIVE_SUFFIX.sub("", name)
            for candidate in dict.fromkeys((stem, _RELEASE.split(stem, 1)[0])):
                entry = tools.get(candidate)
                if entry is not None:
                    self._hit(entry, f"fetches {name!r}, a known campaign's tool", where, scan)
                if candidate in binaries:
                    detail = f"fetches {name!r}, a miner's release ({binaries[candidate].id})"
                    self._named(f"dropper/{candidate}", MINER_DOWNLOAD, detail, where, scan)

    def _one_liner(
        self, argv: list[str], code: interpreters.OneLiner, where: str, scan: _Scan, depth: int
    ) -> None:
        """``python -c``/``perl -e``/...: its literals judged as a shell command's words."""
        found = interpreters.literals(scan.text(code.code), code.language, scan.budget[0])
        scan.budget[0] -= sum(len(s) for s in found.strings)
        label = ", ".join((f"{code.language} {code.flag}", *found.how))
        here = f"{where} ({label})"
        for items in scan.items(found.lists):
            self._command(list(items), here, scan, depth + 1)
        words = [s for s in scan.items(found.strings) if not _SPACE.search(s)]
        for text in found.strings:
            if _SPACE.search(text):
                self._script(text, here, scan, depth + 1)
            if found.how and depth + 1 < normalise.MAX_DEPTH and _CODE.search(text):
                flag = ", ".join((code.flag, *found.how))
                inner = interpreters.OneLiner(code.language, flag, text, code.index)
                self._one_liner(argv, inner, where, scan, depth + 1)  # exec(b64decode(...))
        if words:
            self._command([argv[0], *words], here, scan, depth + 1)
        if found.fetches:
            names = tuple(normalise.basename(u.split("?", 1)[0]) for u in found.fetches)
            self._dropper(shell.Dropper(found.fetches, names, "fetched and run"), here, scan)

    def _value(self, token: str, where: str, scan: _Scan) -> None:
        """A folded word that is not an option: URL, endpoint, host, agent string."""
        if "://" in token:
            scheme, _, rest = token.partition("://")
            entry = self._literal[Kind.URL_SCHEME].get(scheme.rsplit("=", 1)[-1])
            authority = rest.split("/", 1)[0].rsplit("@", 1)[-1]
            if entry is not None:
                self._pool_url(entry, scheme, authority, where, scan)
            self._endpoint(authority, where, scan)
        elif "=" in token:
            self._value(token.rsplit("=", 1)[-1], where, scan)
        elif "." in token or ":" in token:
            self._endpoint(token, where, scan)
        if self._user_agents and token.startswith(self._user_agents):
            prefix = next(p for p in self._user_agents if token.startswith(p))
            # An agent string carries a version ("xmrig/6.21.0"); "xmrig/build" is a path.
            if not prefix.endswith("/") or token[len(prefix) : len(prefix) + 1].isdigit():
                entry = self._literal[Kind.USER_AGENT][prefix]
                self._hit(entry, f"miner agent string {token!r}", where, scan)

    def _pool_url(self, entry: Entry, scheme: str, authority: str, where: str, scan: _Scan) -> None:
        """A mining URL, or on a loopback host a ``pool-url-loopback``.

        A stratum URL on 127.0.0.1 is what pool software's own tests connect to; that signal
        is capped below the threshold, so it needs a second one.
        """
        if not _loopback(authority):
            self._hit(entry, f"mining URL scheme {scheme}://", where, scan)
            return
        key = f"{entry.id}@loopback"
        if key not in scan.hits:
            weight = min(entry.weight, self._caps.get(POOL_URL_LOOPBACK, UNLISTED_CAP))
            detail = f"mining URL scheme {scheme}:// on loopback {authority!r}"
            scan.hits[key] = Signal(POOL_URL_LOOPBACK, detail, weight, where, entry.id)

    def _endpoint(self, text: str, where: str, scan: _Scan) -> None:
        host, colon, port = text.rpartition(":")
        if not colon or not port.isdigit():
            host, port = text, ""
        host = host.strip("[]")
        if port and host and not _loopback(host):  # a pool's own tests listen on loopback
            entry = self._literal[Kind.POOL_PORT].get(str(int(port)) if len(port) < 6 else port)
            if entry is not None:
                self._hit(entry, f"pool port {port} in {text!r}", where, scan)
        if "." not in host:
            return
        for kind, label in _HOST_KINDS:
            hosts = self._literal[kind]
            suffix = host.rstrip(".") if hosts else ""
            while suffix:
                entry = hosts.get(suffix)
                if entry is not None:
                    self._hit(entry, f"{label} {host!r}", where, scan)
                    break
                suffix = suffix.partition(".")[2]

    def _env(self, name: str, value: str, scan: _Scan) -> None:
        where = f"env {name}"
        entry = self._literal[Kind.ENV_NAME].get(name.lower())
        if entry is not None:
            self._hit(entry, f"miner configuration variable {name}", where, scan)
        if value.lstrip()[:1] in _STRUCTURED:
            self._text(value, where, scan)  # a JSON/YAML config passed in one variable
            return
        if _SPACE.search(value):
            self._script(value, where, scan, depth=1)
            return
        scan.pieces.append(normalise.Piece(value, where))
        self._value(normalise.fold(value), where, scan)
        for payload in normalise.base64_payloads([value], scan.budget):
            self._script(payload, f"{where} (base64)", scan, depth=1)

    def _text(self, text: str, where: str, scan: _Scan) -> None:
        scan.pieces.append(normalise.Piece(text, where))
        if text.startswith("#!") and _SHELL_SHEBANG.match(text):
            self._script(text, f"{where} (script)", scan, depth=1)
        pool = _json_pool(text) if _POOLS_KEY in text else None
        if pool is not None:
            detail = f"a miner's JSON config: pools[].url {pool[:40]!r}"
            self._named("json-config/pools", "miner-json-config", detail, where, scan)
        folded = normalise.fold(text)
        for literal, entry in self._texts:
            if literal in folded:
                self._hit(entry, f"miner configuration {literal!r}", where, scan)
        options = self._literal[Kind.OPTION]
        algorithms = self._literal[Kind.ALGORITHM]
        for token in scan.tokens(folded):
            if token in algorithms:
                self._hit(algorithms[token], f"mining algorithm {token!r}", where, scan)
            if token[0] == "-" and token in options:
                self._hit(options[token], f"miner option {token}", where, scan)
            self._value(token, where, scan)

    def _image(self, ref: str, scan: _Scan) -> None:
        """A known miner image (or namespace), a repository named after a miner, a typosquat."""
        parsed = images.parse(normalise.plain(ref))
        known = self._literal[Kind.IMAGE]
        namespace, slash, _ = parsed.repository.partition("/")
        entry = known.get(parsed.name) or (
            known.get(f"{parsed.registry}/{namespace}/*") if slash else None
        )
        if entry is not None:
            self._hit(entry, f"image {parsed.name} is a known miner image", "image", scan)
        segment = parsed.repository.rsplit("/", 1)[-1]
        miner = self._names.miner_name(segment)
        if miner is not None:
            detail = f"image repository {segment!r} is named after the miner {miner!r}"
            self._named(f"image-name/{miner}", IMAGE_NAME, detail, "image", scan)
        if slash and parsed.registry in self._names.registries:
            written = namespace if ref.isascii() else images.parse(ref).repository.split("/")[0]
            imitated = self._names.typosquat(namespace, written)
            if imitated is not None:
                detail = f"image namespace {written!r} imitates {imitated!r} ({parsed.name})"
                self._named(f"image-typosquat/{imitated}", IMAGE_TYPOSQUAT, detail, "image", scan)

    def _regexes(self, scan: _Scan) -> None:
        if not scan.pieces:
            return
        haystack = "\n".join(piece.text for piece in scan.pieces)
        for index in self._wallets.search(haystack):
            entry = self._wallets.entries[index]
            if entry.checksum is None:
                self._pattern_hit(self._wallets, index, "wallet address", scan)
            else:
                self._wallet(entry, self._wallets.singles[index], scan)
        for index in self._arguments.search(haystack):
            self._pattern_hit(self._arguments, index, "pattern", scan)

    def _pattern_hit(self, group: PatternSet, index: int, label: str, scan: _Scan) -> None:
        entry, single = group.entries[index], group.singles[index]
        piece = next((p for p in scan.pieces if single.search(p.text)), scan.pieces[0])
        found = single.search(piece.text)
        shown = _shown(found.group(0) if found else "")
        self._hit(entry, f"{label} {shown} ({entry.id})", piece.where, scan)

    def _wallet(self, entry: Entry, single: re2._Regexp, scan: _Scan) -> None:
        """A wallet-shaped match counts as a ``wallet`` only if its checksum holds.

        The first valid one is the evidence; if none is valid, the entry is a
        ``wallet-shaped`` hit, weighing at most that signal's cap (a random token of the
        right alphabet and length). At most :data:`MAX_WALLET_CANDIDATES` distinct tokens
        are checked: past that, padding could hide a real wallet behind invalid ones, so
        the entry counts as a wallet unchecked (and says so).
        """
        checksum, first = entry.checksum or "", None
        checked: set[str] = set()
        for piece in scan.pieces:
            for found in single.finditer(piece.text):
                token = found.group(0)
                if token in checked:
                    continue
                if len(checked) >= MAX_WALLET_CANDIDATES:
                    detail = (
                        f"more than {MAX_WALLET_CANDIDATES} {checksum}-shaped tokens, "
                        f"not all checked ({entry.id})"
                    )
                    self._hit(entry, detail, piece.where, scan)
                    return
                checked.add(token)
                if wallets.valid(checksum, token):
                    detail = f"{checksum} wallet {_shown(token)} (checksum valid, {entry.id})"
                    self._hit(entry, detail, piece.where, scan)
                    return
                first = first or (token, piece.where)
        if first is not None and entry.id not in scan.hits:
            token, where = first
            weight = min(entry.weight, self._caps.get(WALLET_SHAPED, UNLISTED_CAP))
            detail = f"{checksum}-shaped {_shown(token)} whose checksum fails ({entry.id})"
            scan.hits[entry.id] = Signal(WALLET_SHAPED, detail, weight, where, entry.id)


def _loopback(authority: str) -> bool:
    """Whether ``host[:port]`` names this machine (127/8, ::1, localhost, 0.0.0.0)."""
    host = authority.rsplit("]", 1)[0].lstrip("[") if authority.startswith("[") else authority
    if not authority.startswith("["):
        host = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    host = host.rstrip(".")
    if host in _LOOPBACK_NAMES or host.endswith(".localhost"):
        return True
    parts = host.split(".")
    return len(parts) == 4 and parts[0] == "127" and all(p.isdigit() for p in parts)


_CODE = re.compile(r"[(\[]")
"""Decoded one-liner text that is code again (``exec(base64.b64decode(...))``)."""
_HOST_KINDS = ((Kind.POOL_HOST, "mining pool host"), (Kind.CAMPAIGN_HOST, "campaign host"))


_INTERNAL = tuple(
    ipaddress.ip_network(net)
    for net in (
        "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "127.0.0.0/8",
        "169.254.0.0/16", "0.0.0.0/8", "::1/128", "fc00::/7", "fe80::/10", "::/128",
    )
)  # fmt: skip
"""Addresses of one's own network (RFC 1918, CGNAT, ULA, link-local, loopback): a cluster's
Service IPs and a test's own server, not a campaign's host."""


def _raw_ip(host: str) -> bool:
    """Whether ``host[:port]`` is a literal IP address outside one's own networks.

    Documentation ranges (192.0.2.0/24...) count as outside: they stand for public addresses
    in reports and tests, and never occur in a real manifest otherwise.
    """
    host = host.rsplit(":", 1)[0] if host.count(":") == 1 else host.strip("[]")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return not any(address in network for network in _INTERNAL)


def _shown(text: str) -> str:
    text = text.strip()
    return repr(text if len(text) <= 24 else text[:20] + "...")


_SHELL_SHEBANG = re.compile(r"#!\s*\S*/(?:env\s+)?(?:ba|da|a|z|k|busybox\s+)?sh\b")
_POOLS_KEY = '"pools"'
_POOL_MARKS = ("user", "rig-id", "coin", "algo", "nicehash")


def _json_pool(text: str) -> str | None:
    """The first pool URL of an xmrig-style JSON config, or None when ``text`` is not one.

    The shape xmrig, xmrig-proxy and T-Rex read: ``{"pools": [{"url": ..., "user": ...}]}``
    (or a pool without ``user`` under a top-level ``donate-level``). The shape is the miner's
    own and conclusive; pool lists of other software (a URL without a user or a miner key)
    are not it. Bounded: the text is at most one field's length, nesting errors are caught.
    """
    stripped = text.lstrip()
    if stripped[:1] != "{":
        return None
    try:
        config = json.loads(stripped)
    except (ValueError, RecursionError):
        return None
    pools = config.get("pools") if isinstance(config, dict) else None
    for pool in pools[: normalise.MAX_DEPTH * 8] if isinstance(pools, list) else ():
        if not isinstance(pool, dict) or not isinstance(pool.get("url"), str):
            continue
        if any(mark in pool for mark in _POOL_MARKS) or "donate-level" in config:
            return str(pool["url"])
    return None


def compile_entries(entries: Iterable[Entry], scoring: Scoring | None = None) -> Engine:
    """Compile entries once (per policy generation); raises :class:`PatternError`.

    ``scoring``: caps and combination rules; the built-in bundle's unless given.
    """
    return Engine(entries, scoring)

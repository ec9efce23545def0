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

import re
from collections.abc import Iterable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

import re2

from minerguard import images
from minerguard.errors import MinerguardError
from minerguard.signatures import normalise
from minerguard.signatures.bundle import Entry, Kind

THRESHOLD = 1.0
"""Score at which signature evidence is a match."""

KIND_CAPS: dict[Kind, float] = {
    Kind.BINARY: 0.6,
    Kind.OPTION: 1.0,
    Kind.ALGORITHM: 0.5,
    Kind.IMAGE: 1.0,
    Kind.POOL_HOST: 0.6,
    Kind.POOL_PORT: 0.4,
    Kind.URL_SCHEME: 1.0,
    Kind.WALLET: 0.5,
    Kind.ENV_NAME: 0.25,
    Kind.USER_AGENT: 0.5,
    Kind.TEXT: 0.5,
    Kind.ARGUMENT: 1.0,
    Kind.CONTENT: 1.0,
}
"""The most each kind of evidence can add, whatever the number of its hits."""

SIGNAL_NAMES: dict[Kind, str] = {
    Kind.BINARY: "miner-binary",
    Kind.OPTION: "miner-option",
    Kind.ALGORITHM: "mining-algorithm",
    Kind.IMAGE: "miner-image",
    Kind.POOL_HOST: "pool-host",
    Kind.POOL_PORT: "pool-port",
    Kind.URL_SCHEME: "pool-url",
    Kind.WALLET: "wallet",
    Kind.ENV_NAME: "miner-env",
    Kind.USER_AGENT: "miner-agent",
    Kind.TEXT: "miner-config",
    Kind.ARGUMENT: "argument-pattern",
    Kind.CONTENT: "miner-content",
}

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

    __slots__ = ("budget", "cut", "hits", "limit", "pieces")

    def __init__(self) -> None:
        self.hits: dict[str, Signal] = {}
        self.pieces: list[normalise.Piece] = []
        self.budget = [normalise.MAX_DECODED_BYTES]
        self.limit = _budget.get()
        self.cut = False  # this evaluation left something unexamined

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

    def __init__(self, entries: Iterable[Entry]) -> None:
        self.entries: tuple[Entry, ...] = tuple(entries)
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
        self._texts = tuple(self._literal[Kind.TEXT].items())

    # -- evaluation -------------------------------------------------------------------------

    def evaluate(self, subject: Subject) -> Verdict:
        """Collect the evidence in ``subject``; never raises on any input."""
        scan = _Scan()
        if subject.executable:
            self._binary(normalise.basename(subject.executable), "executable", scan)
        argv = [normalise.plain(scan.text(arg)) for arg in scan.items(subject.argv)]
        if argv:
            self._command(argv, "command", scan, depth=0)
        for name, value in scan.items(subject.env):
            self._env(name, normalise.plain(scan.text(value)), scan)
        for index, text in enumerate(subject.texts):
            self._text(normalise.plain(scan.text(text)), f"file {index}", scan)
        if subject.image:
            self._image(subject.image, scan)
        self._regexes(scan)
        if not scan.hits:
            return Verdict(0.0, (), incomplete=True) if scan.cut else CLEAN
        totals: dict[str, float] = {}
        for signal in scan.hits.values():
            totals[signal.name] = totals.get(signal.name, 0.0) + signal.weight
        caps = {SIGNAL_NAMES[kind]: cap for kind, cap in KIND_CAPS.items()}
        score = round(sum(min(total, caps[name]) for name, total in totals.items()), 3)
        signals = tuple(sorted(scan.hits.values(), key=lambda s: (-s.weight, s.name)))
        return Verdict(score=score, signals=signals, incomplete=scan.cut)

    def _hit(self, entry: Entry, detail: str, where: str, scan: _Scan) -> None:
        if entry.id not in scan.hits:
            name = SIGNAL_NAMES[entry.kind]
            scan.hits[entry.id] = Signal(name, detail, entry.weight, where, entry.id)

    def _binary(self, name: str, where: str, scan: _Scan) -> None:
        entry = self._literal[Kind.BINARY].get(name)
        if entry is not None:
            self._hit(entry, f"executable {name!r} is a known miner", where, scan)

    def _command(self, argv: list[str], where: str, scan: _Scan, depth: int) -> None:
        scan.pieces.append(normalise.Piece(" ".join(argv), where))
        argv = normalise.unwrap(argv)
        if not argv:
            return
        script = normalise.shell_script(argv)
        if script is not None:
            if depth < normalise.MAX_DEPTH:
                for command in scan.commands(script):
                    self._command(command, f"{where} (sh -c)", scan, depth + 1)
            return
        self._binary(normalise.basename(argv[0]), where, scan)
        options = self._literal[Kind.OPTION]
        algorithms = self._literal[Kind.ALGORITHM]
        for index in range(1, len(argv)):
            word = argv[index]
            if depth < normalise.MAX_DEPTH and _SPACE.search(word):
                for command in scan.commands(word):
                    self._command(command, where, scan, depth + 1)
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

    def _script(self, text: str, where: str, scan: _Scan, depth: int) -> None:
        for command in scan.commands(normalise.plain(text)):
            self._command(command, where, scan, depth)

    def _value(self, token: str, where: str, scan: _Scan) -> None:
        """A folded word that is not an option: URL, endpoint, host, agent string."""
        if "://" in token:
            scheme, _, rest = token.partition("://")
            entry = self._literal[Kind.URL_SCHEME].get(scheme.rsplit("=", 1)[-1])
            if entry is not None:
                self._hit(entry, f"mining URL scheme {scheme}://", where, scan)
            self._endpoint(rest.split("/", 1)[0].rsplit("@", 1)[-1], where, scan)
        elif "=" in token:
            self._value(token.rsplit("=", 1)[-1], where, scan)
        elif "." in token or ":" in token:
            self._endpoint(token, where, scan)
        if self._user_agents and token.startswith(self._user_agents):
            prefix = next(p for p in self._user_agents if token.startswith(p))
            self._hit(
                self._literal[Kind.USER_AGENT][prefix], f"miner agent string {token!r}", where, scan
            )

    def _endpoint(self, text: str, where: str, scan: _Scan) -> None:
        host, colon, port = text.rpartition(":")
        if not colon or not port.isdigit():
            host, port = text, ""
        host = host.strip("[]")
        if port and host:
            entry = self._literal[Kind.POOL_PORT].get(str(int(port)) if len(port) < 6 else port)
            if entry is not None:
                self._hit(entry, f"pool port {port} in {text!r}", where, scan)
        hosts = self._literal[Kind.POOL_HOST]
        if "." not in host or not hosts:
            return
        suffix = host.rstrip(".")
        while suffix:
            entry = hosts.get(suffix)
            if entry is not None:
                self._hit(entry, f"mining pool host {host!r}", where, scan)
                return
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
        parsed = images.parse(normalise.plain(ref))
        entry = self._literal[Kind.IMAGE].get(parsed.name)
        if entry is not None:
            self._hit(entry, f"image {parsed.name} is a known miner image", "image", scan)
        self._binary(parsed.repository.rsplit("/", 1)[-1], "image name", scan)

    def _regexes(self, scan: _Scan) -> None:
        if not scan.pieces:
            return
        haystack = "\n".join(piece.text for piece in scan.pieces)
        for group, label in ((self._wallets, "wallet address"), (self._arguments, "pattern")):
            for index in group.search(haystack):
                entry, single = group.entries[index], group.singles[index]
                piece = next((p for p in scan.pieces if single.search(p.text)), scan.pieces[0])
                found = single.search(piece.text)
                shown = found.group(0).strip() if found else ""
                shown = shown if len(shown) <= 24 else shown[:20] + "..."
                self._hit(entry, f"{label} {shown!r} ({entry.id})", piece.where, scan)


def compile_entries(entries: Iterable[Entry]) -> Engine:
    """Compile entries once (per policy generation); raises :class:`PatternError`."""
    return Engine(entries)

"""The evaluator: runs a parsed script's structure on data, never its programs.

Variables and expansions (``$p$q``, ``${x:1:3}``, ``${x:-y}``, brace lists, field splitting on
``IFS``), command substitution, pipelines whose data flows through the modelled decoders,
``eval``/``sh -c``/pipes into a shell (evaluated again, one level deeper), here-strings,
here-documents, files written with known content, and downloads (where they go, when they
are run). What it finds is a :class:`Result`.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from minerguard.signatures import normalise
from minerguard.signatures.shell import commands, fetches
from minerguard.signatures.shell.syntax import (
    LIT,
    PROCESS,
    VAR,
    Cmd,
    Limits,
    Parser,
    Part,
    Script,
    Word,
)

MAX_VALUE_CHARS = 64 << 10
"""Longest value a variable keeps."""
MAX_FILES = 16
"""Files written with known content (``echo ... > f``, here-documents) that are reported."""
MAX_DROPPERS = 64

_KEYWORDS = frozenset(
    {"if", "then", "else", "elif", "do", "while", "until", "!", "{", "time", "function"}
)
_ENDS = frozenset({"fi", "done", "esac", "}", ""})
_SOURCES = frozenset({"source", "."})
_MODELLED = (
    normalise.SHELLS
    | _SOURCES
    | commands.DECODERS
    | commands.DOWNLOADERS
    | {"eval", "echo", "printf", "cat", "tee", "tar", "unzip", "bsdtar", "mv", "cp", "install"}
)
_TRICKS = re.compile(
    r"[$`|<>(){}\\]|\b(?:eval|source|curl|wget|fetch|tar|unzip|bsdtar|mv|cp|install|busybox"
    r"|aria2c|tftp|lwp-download)\b|(?:^|[;&\s])\.\s"
)
"""What the evaluator models: without any of it a script is plain words, tokenised at the
cost of a regex (most scripts in pod specs: ``python manage.py migrate && gunicorn ...``)."""
_ASSIGN = re.compile(r"([A-Za-z_][A-Za-z0-9_]*+)\+?=")
_BRACES = re.compile(r"\{([^{},]*+(?:,[^{},]*+)++)\}")
_IFS = re.compile(r"[ \t\n]++")
_PARAM = re.compile(r"(#?)([A-Za-z_][A-Za-z0-9_]*+|[0-9@*#?$!-])(.*+)", re.DOTALL)
_SLICE = re.compile(r":\s*+(-?[0-9]++)\s*+(?::\s*+(-?[0-9]++))?")


@dataclass(frozen=True, slots=True)
class Command:
    """A simple command the script would run, and how it was decoded (outermost first)."""

    argv: tuple[str, ...]
    how: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Dropper:
    """A remote script or binary fetched and run."""

    urls: tuple[str, ...]
    names: tuple[str, ...]
    run: str
    how: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class File:
    """A file the script writes with content it knows (``echo ... > f``, ``<<EOF``, ``<(...)``)."""

    path: str
    text: str
    how: tuple[str, ...] = ()


@dataclass(slots=True)
class Result:
    """What a script would run, the droppers in it and what could not be decoded."""

    commands: list[Command] = field(default_factory=list)
    droppers: list[Dropper] = field(default_factory=list)
    files: list[File] = field(default_factory=list)
    obfuscated: list[str] = field(default_factory=list)
    words: int = 0
    produced: int = 0


@dataclass(frozen=True, slots=True)
class _Data:
    """Bytes flowing through a pipeline or out of a substitution, with where they came from."""

    data: bytes = b""
    how: tuple[str, ...] = ()
    remote: tuple[str, ...] = ()
    names: tuple[str, ...] = ()
    cut: bool = False

    @property
    def text(self) -> str:
        return self.data.decode("utf-8", "replace")


EMPTY = _Data()


def _join(a: tuple[str, ...], b: tuple[str, ...]) -> tuple[str, ...]:
    if not b:
        return a
    if not a:
        return b
    return a + tuple(x for x in b if x not in a)


@dataclass(frozen=True, slots=True)
class _Value:
    text: str
    how: tuple[str, ...] = ()
    remote: tuple[str, ...] = ()
    names: tuple[str, ...] = ()
    cut: bool = False


_UNSET = _Value("")


@dataclass(slots=True)
class _Meta:
    how: tuple[str, ...] = ()
    remote: tuple[str, ...] = ()
    names: tuple[str, ...] = ()
    cut: bool = False

    def add(self, value: _Value | _Data) -> None:
        self.how = _join(self.how, value.how)
        self.remote = _join(self.remote, value.remote)
        self.names = _join(self.names, value.names)
        self.cut = self.cut or value.cut


class _Eval:
    """One evaluation: variables, downloaded files, and what was found."""

    __slots__ = (
        "consumed",
        "fetches",
        "limits",
        "producer",
        "result",
        "variables",
        "written",
    )

    def __init__(self, limits: Limits, env: Mapping[str, str]) -> None:
        self.limits = limits
        self.result = Result()
        self.variables: dict[str, _Value] = {"IFS": _Value(" \t\n")}
        for name, value in itertools.islice(env.items(), limits.variables):
            self.variables[name] = _Value(value[:MAX_VALUE_CHARS])
        self.fetches = fetches.Fetches()
        self.producer = -1  # the echo/printf just run, by index in result.commands
        self.consumed = False  # the command just run decoded or ran its standard input
        self.written: dict[str, _Data] = {}
        """Files the script wrote with known content, by path, for the commands that read them."""

    # -- structure ---------------------------------------------------------------------

    def text(self, text: str, how: tuple[str, ...], depth: int) -> _Data:
        return self.items(Parser(text, self.limits).script(None, 0), how, depth)

    def items(self, script: Script, how: tuple[str, ...], depth: int) -> _Data:
        outputs: list[_Data] = []
        for pipeline in script:
            data: _Data | None = None
            produced = -1
            for cmd in pipeline:
                self.producer, self.consumed = -1, False
                data = self.command(cmd, data, how, depth)
                if produced >= 0 and self.consumed:
                    # echo PAYLOAD | decoder: the payload is data, judged as what it decodes
                    # to, never as a command line of its own
                    del self.result.commands[produced]
                produced = self.producer
            if data is not None and (data.data or data.remote or data.cut):
                outputs.append(data)
        if not outputs:
            return EMPTY
        if len(outputs) == 1:
            return outputs[0]
        meta = _Meta()
        for out in outputs:
            meta.add(out)
        joined = b"".join(out.data for out in outputs)
        return _Data(joined, meta.how, meta.remote, meta.names, meta.cut)

    def step(self, depth: int) -> bool:
        """Whether one more evaluation of text at ``depth`` is within the limits."""
        if depth >= self.limits.depth or self.limits.steps <= 0:
            self.limits.cut = True
            return False
        self.limits.steps -= 1
        return True

    # -- words -------------------------------------------------------------------------

    def variable(self, spec: str) -> _Value:
        match = _PARAM.fullmatch(spec)
        if match is None:
            return _UNSET
        length, name, rest = match.groups()
        value = self.variables.get(name, _UNSET)
        if length:
            return _Value(str(len(value.text)), value.how, value.remote, value.names, value.cut)
        if not rest:
            return value
        if rest[:2] in (":-", ":=") or rest[:1] in ("-", "="):
            default = rest[2:] if rest[:1] == ":" else rest[1:]
            if (not value.text and rest[:1] == ":") or name not in self.variables:
                return _Value(default)
            return value
        sliced = _SLICE.fullmatch(rest)
        if sliced:
            start = int(sliced.group(1))
            text = value.text[start:] if start >= 0 else value.text[len(value.text) + start :]
            if sliced.group(2) is not None:
                count = int(sliced.group(2))
                text = text[:count]  # a negative length counts from the end, as in bash
            return _Value(text, value.how, value.remote, value.names, value.cut)
        return value

    def part(self, part: Part, how: tuple[str, ...], depth: int) -> _Value:
        kind, value, _, tag = part
        if kind == VAR:
            found = self.variable(str(value))
        elif tag == PROCESS:  # <(...): the command reads a file holding the output
            data = self.substitute(value, how, depth)  # type: ignore[arg-type]
            self.wrote("/dev/fd/63", data)
            return _Value("/dev/fd/63", data.how, data.remote, data.names, data.cut)
        else:
            data = self.substitute(value, how, depth)  # type: ignore[arg-type]
            found = _Value(data.text.rstrip("\n"), data.how, data.remote, data.names, data.cut)
        granted = self.limits.spend(len(found.text))
        if granted < len(found.text):
            return _Value(found.text[:granted], found.how, found.remote, found.names, True)
        return found

    def substitute(self, script: Script, how: tuple[str, ...], depth: int) -> _Data:
        if not self.step(depth):
            return _Data(cut=True)
        return self.items(script, how, depth + 1)

    def expand(
        self, word: Word, how: tuple[str, ...], depth: int, meta: _Meta, split: bool = True
    ) -> list[str]:
        """The fields a word expands to (field splitting only where unquoted)."""
        if len(word) == 1 and word[0][0] == LIT and not word[0][2]:
            text = str(word[0][1])
            braces = _BRACES.fullmatch(text) if split and "{" in text else None
            return braces.group(1).split(",") if braces else [text]
        fields: list[str] = []
        current: list[str] = []
        started = False
        for part in word:
            kind, value, quoted, tag = part
            if kind == LIT:
                current.append(str(value))
                started = True
                if tag:
                    meta.how = _join(meta.how, (tag,))
                continue
            found = self.part(part, how, depth)
            meta.add(found)
            if quoted or not split:
                current.append(found.text)
                started = True
                continue
            pieces = _IFS.split(found.text)
            current.append(pieces[0])
            for piece in pieces[1:]:
                joined = "".join(current)
                if joined:
                    fields.append(joined)
                current = [piece]
        joined = "".join(current)
        if joined or started:
            fields.append(joined)
        return fields

    # -- commands ----------------------------------------------------------------------

    def assign(self, word: Word, how: tuple[str, ...], depth: int) -> bool:
        """Run ``word`` as an assignment if it is one (``NAME=value``)."""
        first = word[0]
        if first[0] != LIT or first[2]:
            return False
        match = _ASSIGN.match(str(first[1]))
        if match is None:
            return False
        meta = _Meta()
        rest: Word = [(LIT, str(first[1])[match.end() :], False, first[3]), *word[1:]]
        text = "".join(self.expand(rest, how, depth, meta, split=False))
        name = match.group(1)
        if name not in self.variables and len(self.variables) >= self.limits.variables:
            self.limits.cut = True
            return True
        if match.group(0).endswith("+="):
            before = self.variables.get(name, _UNSET).text
            if len(before) >= MAX_VALUE_CHARS:
                self.limits.cut = True
                return True  # full: appending more would only copy it again
            text = before + text
        if len(text) > MAX_VALUE_CHARS:
            text, meta.cut = text[:MAX_VALUE_CHARS], True
            self.limits.cut = True
        self.variables[name] = _Value(text, meta.how, meta.remote, meta.names, meta.cut)
        return True

    def command(
        self, cmd: Cmd, stdin: _Data | None, how: tuple[str, ...], depth: int
    ) -> _Data | None:
        """Run one simple command: assignments, expansion, then what the command does."""
        if cmd.heredoc is not None:
            stdin = _Data(cmd.heredoc.encode("utf-8", "replace"))
        out = self.items(cmd.group, how, depth) if cmd.group is not None else None
        if out is None:
            out = self.simple(cmd, stdin, how, depth)
        for op, target in cmd.redirects:
            if op in {">", ">>", ">|", "&>"} and out is not None:
                path = "".join(self.expand(target, how, depth, _Meta(), split=False))
                self.wrote(path, out)
                return None
        return out

    def wrote(self, path: str, data: _Data) -> None:
        """A file written with known content: reported, for it may be a miner's config."""
        if data.data and len(self.result.files) < MAX_FILES:
            self.result.files.append(File(path, data.text, data.how))
            self.written[path] = data

    def simple(
        self, cmd: Cmd, stdin: _Data | None, how: tuple[str, ...], depth: int
    ) -> _Data | None:
        """A simple command: assignments, words, then what the command does."""
        words = cmd.words
        start = 0
        while start < len(words) and self.assign(words[start], how, depth):
            start += 1
        meta = _Meta()
        argv: list[str] = []
        for word in words[start:]:
            argv.extend(self.expand(word, how, depth, meta))
        for op, target in cmd.redirects:
            if op == "<<<" and target:
                fields = self.expand(target, how, depth, meta, split=False)
                stdin = _Data(("".join(fields) + "\n").encode("utf-8", "replace"), meta.how)
        self.result.words += len(argv)
        while argv and argv[0] in _KEYWORDS:
            argv = argv[1:]
        if not argv or argv[0] in _ENDS:
            return None
        here = _join(how, meta.how)
        ran = normalise.unwrap(argv)
        name = normalise.basename(ran[0]) if ran else ""
        if name == "busybox" and len(ran) > 1:
            ran = ran[1:]
            name = normalise.basename(ran[0])
        interpreter = name not in _MODELLED and commands.INTERPRETERS.fullmatch(name) is not None
        if name not in _MODELLED and not interpreter:
            self.emit(argv, here)
            if ran and self.fetches:
                self.ran_saved(ran[0], here, "downloaded, then run")
            return None
        if name in normalise.SHELLS or name in _SOURCES:
            return self.shell(argv, ran, stdin=stdin, meta=meta, how=here, depth=depth)
        if name == "eval":
            return self.sink(" ".join(ran[1:]), here, meta, depth, "eval")
        self.emit(argv, here)
        if interpreter:
            self.interpreter(ran, name, stdin, meta, here)
            return None
        return self.builtin(ran, name, stdin, meta, here)

    def shell(
        self,
        argv: list[str],
        ran: list[str],
        *,
        stdin: _Data | None,
        meta: _Meta,
        how: tuple[str, ...],
        depth: int,
    ) -> _Data | None:
        """A shell: its ``-c`` script, a script file, or what is piped into it."""
        name = normalise.basename(ran[0])
        script = normalise.shell_script(ran)
        if script is not None:
            position = len(ran) - ran[::-1].index(script)
            if position < len(ran):  # the script's own arguments ($0, $1...) are words too
                self.emit([ran[0], *ran[position:]], how)
            return self.sink(script, how, meta, depth, "sh -c")
        operands = commands.script_operand(ran)
        if meta.remote:
            self.dropper(meta.remote, meta.names, f"{name} <(download)", how)
        if operands and operands[0] not in {"-", "/dev/stdin"}:
            self.emit(argv, how)
            written = self.written.get(operands[0])
            if written is not None:  # echo ... > /tmp/s.sh; sh /tmp/s.sh
                wrote = _Meta()
                wrote.add(written)
                via = f"{name} {operands[0]}"
                return self.sink(written.text, _join(how, written.how), wrote, depth, via)
            self.ran_saved(operands[0], how, f"{name} {operands[0]}")
            return None
        if stdin is None:
            self.emit(argv, how)
            return None
        if len(ran) > 1:
            self.emit(argv, how)  # bash -s ARGS: the arguments the piped script is given
        piped = _Meta()
        piped.add(stdin)
        self.consumed = True
        return self.sink(stdin.text, _join(how, stdin.how), piped, depth, f"piped to {name}")

    def interpreter(
        self, ran: list[str], name: str, stdin: _Data | None, meta: _Meta, how: tuple[str, ...]
    ) -> None:
        """python/perl/node/ruby/php: a downloaded script run, or a download piped in."""
        if meta.remote:
            self.dropper(meta.remote, meta.names, f"{name} <(download)", how)
        operands = commands.operands(ran)
        if operands and not {"-c", "-e", "-r", "-E", "--eval"} & set(ran):
            self.ran_saved(operands[0], how, f"{name} {operands[0]}")
        elif stdin is not None and stdin.remote:
            self.dropper(stdin.remote, stdin.names, f"piped to {name}", how)

    def builtin(
        self, argv: list[str], name: str, stdin: _Data | None, meta: _Meta, how: tuple[str, ...]
    ) -> _Data | None:
        """Standard output of the commands we model; None where it is unknown."""
        if name == "echo":
            return self.echo(argv, meta)
        if name == "printf":
            return self.printf(argv, meta)
        if name in commands.DOWNLOADERS:
            return self.download(argv, name)
        if name in {"tar", "unzip", "bsdtar"}:
            piped = (stdin.remote, stdin.names) if stdin is not None and stdin.remote else None
            self.fetches.extract(argv, piped)
            return None
        if name in {"mv", "cp", "install"}:
            self.fetches.moved(argv)
            return None
        files = [a for a in commands.operands(argv) if a != "-"]
        if stdin is None and files and files[0] in self.written:
            stdin, files = self.written[files[0]], []  # a file the script wrote before
        if stdin is None:
            return None
        if name == "tee" or (name == "cat" and not files):
            return stdin
        if name == "tr":
            return self.translate(argv, stdin)
        decoder = commands.stdin_decoder(argv, name)
        if decoder is None:
            return None
        if files and name != "openssl":
            return None  # it reads a file we do not know, not the pipe
        label, decode = decoder
        self.consumed = True
        out, cut = decode(stdin.data, self.limits.output)
        self.limits.spend(len(out))
        if cut:
            self.limits.cut = True
        return _Data(out, _join(stdin.how, (label,)), stdin.remote, stdin.names, stdin.cut or cut)

    def echo(self, argv: list[str], meta: _Meta) -> _Data:
        self.producer = len(self.result.commands) - 1
        out, labels, cut = commands.echo(argv, self.limits.output)
        self.limits.spend(len(out))
        return _Data(out, _join(meta.how, labels), meta.remote, meta.names, meta.cut or cut)

    def printf(self, argv: list[str], meta: _Meta) -> _Data:
        self.producer = len(self.result.commands) - 1
        out, labels, cut = commands.printf(argv, self.limits.output)
        self.limits.spend(len(out))
        return _Data(out, _join(meta.how, labels), meta.remote, meta.names, meta.cut or cut)

    def translate(self, argv: list[str], stdin: _Data) -> _Data | None:
        found = commands.translate(argv, stdin.data, self.limits.output)
        if found is None:
            return None
        self.consumed = True
        out, label, cut = found
        self.limits.spend(len(out))
        how = _join(stdin.how, (label,)) if label else stdin.how
        return _Data(out, how, stdin.remote, stdin.names, stdin.cut or cut)

    # -- evaluation of text and droppers -------------------------------------------------

    def sink(self, text: str, how: tuple[str, ...], meta: _Meta, depth: int, via: str) -> _Data:
        """Text that a shell will run (``sh -c``, ``eval``, a pipe into ``sh``)."""
        if meta.remote:
            run = via if via.startswith("piped") else f"{via} $(download)"
            self.dropper(meta.remote, meta.names, run, how)
        if meta.cut:
            self.result.obfuscated.append(f"{via}: decoding cut at its bounds")
        if not self.step(depth):
            if text.strip():
                self.result.obfuscated.append(f"{via}: nested deeper than the evaluator follows")
            return _Data(cut=True)
        return self.text(text, how, depth + 1)

    def dropper(
        self, urls: tuple[str, ...], names: tuple[str, ...], run: str, how: tuple[str, ...]
    ) -> None:
        if len(self.result.droppers) < MAX_DROPPERS:
            self.result.droppers.append(Dropper(urls, names, run, how))

    def ran_saved(self, path: str, how: tuple[str, ...], run: str) -> None:
        """``path`` is run: a dropper if the script fetched it."""
        found = self.fetches.ran(path, run)
        if found is not None:
            (urls, names), run = found
            self.dropper(urls, names, run, how)

    def download(self, argv: list[str], name: str) -> _Data | None:
        found = commands.download(argv, name)
        if found is None:
            return None
        if found.to_stdout:
            return _Data(remote=found.urls, names=found.names)
        self.fetches.saved_by(found)
        return None

    def emit(self, argv: list[str], how: tuple[str, ...]) -> None:
        self.result.commands.append(Command(tuple(argv), how))


def _plain(script: str, limits: Limits) -> Result:
    """A script with nothing to evaluate: its simple commands, split by the shell's rules."""
    found = normalise.shell_commands(script, limits.words)
    result = Result(commands=[Command(tuple(words)) for words in found])
    result.words = sum(len(words) for words in found)
    if limits.words is not None:
        limits.words -= result.words
        limits.cut = limits.cut or (limits.words <= 0 and bool(script.strip()))
    return result


def evaluate(
    script: str,
    limits: Limits | None = None,
    env: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
) -> Result:
    """Every simple command ``script`` would run, the droppers in it, what was cut.

    ``limits`` may be shared by several calls (they then share the bounds); the default is a
    fresh :class:`Limits`. ``env``: the variables the script starts with (a container's
    environment: ``echo $PAYLOAD | xxd -r -p | sh`` with PAYLOAD set in the pod spec). Never
    raises; returns what it found up to the first bound it met.
    """
    limits = limits if limits is not None else Limits()
    if _TRICKS.search(script) is None:
        return _plain(script, limits)
    evaluator = _Eval(limits, dict(env or ()))  # only here: the plain path needs no variables
    before = limits.output
    evaluator.text(script, (), 0)
    evaluator.result.produced = before - limits.output
    return evaluator.result


def commands_of(
    argv: Sequence[str], env: Mapping[str, str] | None = None, limits: Limits | None = None
) -> list[tuple[str, ...]]:
    """``argv`` and, when it is a shell given a script (``sh -c``), every command it runs.

    For callers that look for what a command line names (the files it reads, the scripts it
    runs) and must see through encodings: ``echo 'c2ggL3MvcnVuLnNo' | base64 -d | sh`` names
    ``/s/run.sh`` as plainly as ``sh /s/run.sh`` does. Bounded like :func:`evaluate`.
    """
    found = [tuple(argv)]
    script = normalise.shell_script(normalise.unwrap(list(argv)))
    if script is not None:
        found.extend(command.argv for command in evaluate(script, limits, env).commands)
    return found

"""Shell syntax for the evaluator: words, simple commands, pipelines and their parser.

Tolerant by design (an attacker writes this text): unbalanced quotes, odd syntax and
here-documents still yield the words that are there. One pass over the text: plain runs are
matched by possessive regexes, nesting of ``$(...)``, backticks and subshells is bounded by
:data:`MAX_NEST` (deeper text stays literal), and the words parsed are charged to
:class:`Limits`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from minerguard.signatures import decoders

MAX_NEST = 16
"""Deepest nesting of ``$(...)``/backticks/subshells the parser follows."""

LIT, VAR, SUB = 0, 1, 2
"""Kinds of word parts: literal text, a variable, a command substitution."""
PROCESS = "process-substitution"
"""The tag of a ``<(...)`` part (the command reads a file holding its output)."""

_BLANK = re.compile(r"[ \t\r]++")
_PLAIN = re.compile(r"""[^\s'"\\;|&()<>$`]++""")
_SIMPLE_WORD = re.compile(
    r"""[ \t\r]*+([^\s'"\\;|&()<>$`#][^\s'"\\;|&()<>$`]*+)(?=[ \t\r\n;|&()]|\Z)"""
)
_BACKTICK_BODY = re.compile(r"(?:[^`\\]++|\\.?)*+", re.DOTALL)
_ANSI_BODY = re.compile(r"(?:[^'\\]++|\\.?)*+", re.DOTALL)
_DQ_PLAIN = re.compile(r'[^"\\$`]++')
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*+")


Part = tuple[int, object, bool, str]
"""One piece of a word: kind (LIT, VAR, SUB), value, quoted, decoder or tag."""
Word = list[Part]


@dataclass(slots=True)
class Cmd:
    """A simple command as written: its words, redirections, or a subshell's commands."""

    words: list[Word] = field(default_factory=list)
    redirects: list[tuple[str, Word]] = field(default_factory=list)
    group: Script | None = None
    """A subshell ``( ... )``: its commands, whose output is the group's."""
    heredoc: str | None = None
    """The body of its here-document (``<<EOF``), its standard input."""


Pipeline = list[Cmd]
Script = list[Pipeline]


@dataclass(slots=True)
class Limits:
    """What evaluations sharing this object may still spend; it is mutated as they spend.

    ``output``: bytes produced by expansions and decoders; ``steps``: evaluations of text
    (``eval``, ``sh -c``, substitutions, pipes into a shell); ``depth``: nesting of those;
    ``variables``: distinct variables kept; ``words``: words parsed (None: unbounded).
    ``cut`` is set once any of them ran out.
    """

    output: int = 256 << 10
    steps: int = 1024
    depth: int = 8
    variables: int = 256
    words: int | None = None
    cut: bool = False

    def spend(self, size: int) -> int:
        """Take up to ``size`` output bytes; returns how many were granted."""
        if size <= self.output:
            self.output -= size
            return size
        granted, self.output, self.cut = self.output, 0, True
        return granted


class Parser:
    """A tolerant parser: unbalanced quotes, odd syntax and here-docs still yield words."""

    __slots__ = ("heredocs", "i", "limits", "n", "s")

    def __init__(self, text: str, limits: Limits) -> None:
        self.s, self.i, self.n, self.limits = text, 0, len(text), limits
        self.heredocs: list[tuple[Cmd, str]] = []

    def script(self, closer: str | None, level: int) -> Script:
        """Pipelines up to ``closer`` (``)`` of a substitution or subshell) or the end."""
        s, n = self.s, self.n
        items: Script = []
        pipeline: Pipeline = []
        cmd = Cmd()

        def finish(new_pipeline: bool) -> None:
            nonlocal cmd, pipeline
            if cmd.words or cmd.redirects or cmd.group is not None:
                pipeline.append(cmd)
                cmd = Cmd()
            if new_pipeline and pipeline:
                items.append(pipeline)
                pipeline = []

        simple = _SIMPLE_WORD.match
        limits = self.limits
        while self.i < n:
            fast = simple(s, self.i)
            if fast is not None and (limits.words is None or limits.words > 0):
                if limits.words is not None:
                    limits.words -= 1
                cmd.words.append([(LIT, fast.group(1), False, "")])
                self.i = fast.end()
                continue
            c = s[self.i]
            if c in " \t\r":
                self.i = _BLANK.match(s, self.i).end()  # type: ignore[union-attr]
            elif c in ";\n":
                self.i += 1
                finish(True)
                if c == "\n" and self.heredocs:
                    self._heredocs()
            elif c == "&":
                if s.startswith("&>", self.i):
                    self._redirect(cmd, 2, level)
                else:
                    self.i += 2 if s.startswith("&&", self.i) else 1
                    finish(True)
            elif c == "|":
                if s.startswith("||", self.i):
                    self.i += 2
                    finish(True)
                else:
                    self.i += 2 if s.startswith("|&", self.i) else 1
                    finish(False)
            elif c == ")":
                self.i += 1
                if closer == ")":
                    break
                finish(True)
            elif c == "(":
                if s.startswith("((", self.i):
                    end = s.find("))", self.i + 2)
                    self.i = n if end < 0 else end + 2
                elif level < MAX_NEST:
                    self.i += 1
                    finish(False)
                    cmd.group = self.script(")", level + 1)
                    finish(False)
                else:
                    self.i += 1
                    finish(True)
            elif c in "<>":
                if s.startswith(("<(", ">("), self.i) and level < MAX_NEST:
                    self.i += 2
                    inner = self.script(")", level + 1)
                    cmd.words.append([(SUB, inner, True, PROCESS)])
                else:
                    size = 1
                    while self.i + size < n and s[self.i + size] in "<>&|":
                        size += 1
                    self._redirect(cmd, size, level)
            elif c == "#":
                end = s.find("\n", self.i)
                self.i = n if end < 0 else end
            else:
                if self.limits.words is not None:
                    if self.limits.words <= 0:
                        self.limits.cut = True
                        self.i = n
                        break
                    self.limits.words -= 1
                start = self.i
                word = self.word(level)
                if self.i < n and s[self.i] in "<>" and s[start : self.i].isdigit():
                    continue  # the fd of a redirection (2>&1), not an argument
                if word:
                    cmd.words.append(word)
        finish(True)
        return items

    def _redirect(self, cmd: Cmd, size: int, level: int) -> None:
        op = self.s[self.i : self.i + size]
        self.i += size
        if op == "<<" and self.s.startswith("-", self.i):
            self.i += 1
        match = _BLANK.match(self.s, self.i)
        if match:
            self.i = match.end()
        if self.i < self.n and self.s[self.i] not in "\n;|&()<>":
            target = self.word(level)
            if op == "<<" and len(self.heredocs) < 16:
                self.heredocs.append((cmd, "".join(str(p[1]) for p in target if p[0] == LIT)))
            else:
                cmd.redirects.append((op, target))

    def _heredocs(self) -> None:
        """Read the bodies of the here-documents opened on the line just ended."""
        for cmd, delimiter in self.heredocs:
            end = re.compile(rf"^\t*+{re.escape(delimiter)}[ \t]*+$", re.M).search(self.s, self.i)
            stop = self.n if end is None else end.start()
            cmd.heredoc = self.s[self.i : stop]
            self.i = self.n if end is None else min(end.end() + 1, self.n)
        self.heredocs.clear()

    def word(self, level: int) -> Word:
        """One word: its literal, quoted, variable and substitution parts, in order."""
        s, n = self.s, self.n
        parts: Word = []
        while self.i < n:
            c = s[self.i]
            if c in " \t\r\n;|&()<>":
                break
            if c == "'":
                end = s.find("'", self.i + 1)
                end = n if end < 0 else end
                parts.append((LIT, s[self.i + 1 : end], True, ""))
                self.i = end + 1
            elif c == '"':
                self.i += 1
                self._double(parts, level)
            elif c == "\\":
                if self.i + 1 < n and s[self.i + 1] != "\n":
                    parts.append((LIT, s[self.i + 1], True, ""))
                self.i += 2
            elif c == "$":
                self._dollar(parts, level, quoted=False)
            elif c == "`":
                self._backtick(parts, level, quoted=False)
            else:
                match = _PLAIN.match(s, self.i)
                if match is None:  # pragma: no cover - every other character is plain
                    self.i += 1
                    continue
                parts.append((LIT, match.group(), False, ""))
                self.i = match.end()
        return parts

    def _double(self, parts: Word, level: int) -> None:
        s, n = self.s, self.n
        start = len(parts)
        while self.i < n:
            c = s[self.i]
            if c == '"':
                self.i += 1
                break
            if c == "\\":
                nxt = s[self.i + 1 : self.i + 2]
                if nxt in ('"', "\\", "$", "`"):
                    parts.append((LIT, nxt, True, ""))
                elif nxt != "\n":
                    parts.append((LIT, "\\" + nxt, True, ""))
                self.i += 2
            elif c == "$":
                self._dollar(parts, level, quoted=True)
            elif c == "`":
                self._backtick(parts, level, quoted=True)
            else:
                match = _DQ_PLAIN.match(s, self.i)
                assert match is not None  # noqa: S101 - c is none of the four above
                parts.append((LIT, match.group(), True, ""))
                self.i = match.end()
        if len(parts) == start:
            parts.append((LIT, "", True, ""))  # "" is an empty word, not no word

    def _dollar(self, parts: Word, level: int, quoted: bool) -> None:
        s, n = self.s, self.n
        nxt = s[self.i + 1 : self.i + 2]
        if nxt == "(":
            if s.startswith("$((", self.i):
                end = s.find("))", self.i + 3)
                parts.append((LIT, "0", quoted, ""))
                self.i = n if end < 0 else end + 2
            elif level >= MAX_NEST:
                self.limits.cut = True
                parts.append((LIT, "$(", quoted, ""))
                self.i += 2
            else:
                self.i += 2
                parts.append((SUB, self.script(")", level + 1), quoted, ""))
        elif nxt == "{":
            end = s.find("}", self.i + 2)
            end = n if end < 0 else end
            parts.append((VAR, s[self.i + 2 : end], quoted, ""))
            self.i = end + 1
        elif nxt == "'" and not quoted:
            start = self.i + 2
            end = _ANSI_BODY.match(s, start).end()  # type: ignore[union-attr]
            raw = s[start : min(end, n)].encode("utf-8", "replace")
            value, _ = decoders.escapes(raw, len(raw) * 4 + 4)
            parts.append((LIT, value.decode("utf-8", "replace"), True, "ansi-c"))
            self.i = end + 1
        elif nxt == '"' and not quoted:
            self.i += 2
            self._double(parts, level)
        else:
            match = _NAME.match(s, self.i + 1)
            if match:
                parts.append((VAR, match.group(), quoted, ""))
                self.i = match.end()
            elif nxt and nxt in "0123456789@*#?$!-":
                parts.append((VAR, nxt, quoted, ""))
                self.i += 2
            else:
                parts.append((LIT, "$", quoted, ""))
                self.i += 1

    def _backtick(self, parts: Word, level: int, quoted: bool) -> None:
        s, n = self.s, self.n
        end = _BACKTICK_BODY.match(s, self.i + 1).end()  # type: ignore[union-attr]
        inner = s[self.i + 1 : min(end, n)]
        self.i = end + 1
        if level >= MAX_NEST:
            self.limits.cut = True
            parts.append((LIT, inner, quoted, ""))
            return
        inner = re.sub(r"\\([`\\$])", r"\1", inner)
        parser = Parser(inner, self.limits)
        parts.append((SUB, parser.script(None, level + 1), quoted, ""))

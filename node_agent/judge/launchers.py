"""Look through launchers to the program actually run, and see code kept off the command line.

``/proc/PID/exe`` names the file the kernel exec'd. Run through the dynamic loader
(``/lib64/ld-linux-x86-64.so.2 /x/.hidden/miner -c cfg``) that is the loader, and every check
on the executable (its bytes, where it lives, whether it is in the image) would judge the
loader. The program the loader maps is in ``/proc/PID/maps`` (and readable through
``map_files`` even when deleted or in a memfd), so the agent judges that program exactly as if
it had been exec'd directly and names the loader in the reasons. ``exec -a`` (argv[0]
renamed) and ``prctl(PR_SET_NAME)`` (comm renamed) change only names: the executable is still
judged by its path and bytes; the renames are named in the reasons with no weight.

Interpreters whose program is not on the command line (``python3 -`` or no script with stdin
a pipe, ``/dev/fd/N``, a memfd, a script deleted after start) give nothing to judge at exec:
that is itself a signal (``code-not-on-command-line``), which behaviour combines with a pool
connection or the pure-compute profile. Everything here is pure except ``program_mapping``'s
input (the maps text), so the rules are tested on strings.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass
from pathlib import PurePosixPath

from node_agent.kernel.procfs import Executable
from node_agent.records import Reason

LOADER_NAME = re.compile(r"^(ld-linux[-\w.]*\.so(\.\d+)*|ld-musl-[\w.]+\.so(\.\d+)*|ld\.so)$")
LOADER_VALUE_OPTIONS = frozenset(
    {
        "--library-path",
        "--inhibit-rpath",
        "--audit",
        "--preload",
        "--argv0",
        "--glibc-hwcaps-prepend",
        "--glibc-hwcaps-mask",
    }
)
LOADER_NO_PROGRAM = frozenset({"--help", "--version", "--list-tunables", "--list-diagnostics"})
MAX_MAPS_LINES = 4096


@dataclass(frozen=True, slots=True)
class Interpreter:
    """How one interpreter family takes code: options with code, options with a value."""

    code_options: frozenset[str]
    value_options: frozenset[str]


_SH = Interpreter(frozenset({"-c"}), frozenset({"-o", "+o", "-O", "+O", "--rcfile", "--init-file"}))
INTERPRETERS: tuple[tuple[re.Pattern[str], Interpreter], ...] = (
    (
        re.compile(r"^(python|pypy)[\d.]*m?$"),
        Interpreter(
            frozenset({"-c", "-m"}), frozenset({"-W", "-X", "-Q", "--check-hash-based-pycs"})
        ),
    ),
    (
        re.compile(r"^perl[\d.]*$"),
        Interpreter(frozenset({"-e", "-E"}), frozenset({"-I", "-M", "-m"})),
    ),
    (re.compile(r"^ruby[\d.]*$"), Interpreter(frozenset({"-e"}), frozenset({"-I", "-r", "-C"}))),
    (
        re.compile(r"^(node|nodejs|bun)$"),
        Interpreter(
            frozenset({"-e", "--eval", "-p", "--print"}), frozenset({"-r", "--require", "--import"})
        ),
    ),
    (re.compile(r"^php[\d.]*$"), Interpreter(frozenset({"-r"}), frozenset({"-d", "-c", "-z"}))),
    (re.compile(r"^lua[\d.]*$|^luajit$"), Interpreter(frozenset({"-e"}), frozenset({"-l"}))),
    (re.compile(r"^(ba|da|z|k|mk|a)?sh$"), _SH),
)
MULTI_CALL = frozenset({"busybox", "toybox"})
"""Multi-call binaries: argv[0] (or argv[1]) names the applet; the bytes judged are theirs."""
INTERACTIVE = ("/dev/pts/", "/dev/tty", "/dev/console")
FROM_DESCRIPTOR = re.compile(r"^(/dev/stdin|/dev/fd/\d+|/proc/(self|\d+)/fd/\d+)$")


@dataclass(frozen=True, slots=True)
class Mapping:
    """One file mapping of /proc/PID/maps."""

    start: str
    end: str
    offset: int
    path: str
    deleted: bool


def is_loader(exe: Executable | None) -> bool:
    """Whether the process's executable is a dynamic loader run directly."""
    return exe is not None and bool(LOADER_NAME.match(PurePosixPath(exe.path).name))


def loader_program(argv: tuple[str, ...]) -> tuple[int, str] | None:
    """(index in argv, path) of the program a directly run loader is asked to run, or None."""
    index = 1
    while index < len(argv):
        arg = argv[index]
        if arg in LOADER_NO_PROGRAM:
            return None
        if arg in LOADER_VALUE_OPTIONS:
            index += 2
            continue
        if arg.startswith("--") and (
            "=" in arg or arg in ("--list", "--verify", "--inhibit-cache")
        ):
            index += 1
            continue
        return index, arg
    return None


def parse_maps(text: str) -> list[Mapping]:
    """File mappings (inode ≠ 0) of a maps text, at most ``MAX_MAPS_LINES`` lines read."""
    found: list[Mapping] = []
    for line in text.splitlines()[:MAX_MAPS_LINES]:
        parts = line.split(maxsplit=5)
        if len(parts) < 6 or parts[4] == "0" or not parts[5].startswith("/"):
            continue
        start, _, end = parts[0].partition("-")
        try:
            offset = int(parts[2], 16)
        except ValueError:
            continue
        target = Executable.from_link(parts[5])
        found.append(Mapping(start, end, offset, target.path, target.deleted))
    return found


def program_mapping(
    maps: list[Mapping], program: str, cwd: str | None, loader: Executable
) -> Mapping | None:
    """The mapping of ``program`` (as the loader was given it) at file offset 0, or None.

    Matched by its path resolved against ``cwd``, else by its base name; never the loader's.
    """
    wanted = program if program.startswith("/") or cwd is None else posixpath.join(cwd, program)
    wanted = posixpath.normpath(wanted)
    heads = [m for m in maps if m.offset == 0 and m.path != loader.path]
    exact = next((m for m in heads if m.path == wanted), None)
    if exact is not None:
        return exact
    base = PurePosixPath(program).name
    return next((m for m in heads if PurePosixPath(m.path).name == base), None)


def interpreter_of(exe: Executable | None) -> Interpreter | None:
    """The interpreter family of an executable, by its file name (python3.11, perl, sh...)."""
    if exe is None:
        return None
    name = PurePosixPath(exe.path).name
    return next((i for pattern, i in INTERPRETERS if pattern.match(name)), None)


def script_operand(argv: tuple[str, ...], interpreter: Interpreter) -> str | None:
    """The script an interpreter runs; "" when its code is on the command line; None: stdin."""
    index = 1
    while index < len(argv):
        arg = argv[index]
        if arg in {"-", "--"}:
            return None if arg == "-" or index + 1 >= len(argv) else argv[index + 1]
        if arg in interpreter.code_options or any(
            arg.startswith(o) and len(o) == 2 and len(arg) > 2 and not arg.startswith("--")
            for o in interpreter.code_options
        ):
            return ""  # -c CODE, -cCODE, -m MODULE: code (or a module on disk) named here
        if arg.startswith("-") and arg != "-":
            # bundled single-letter flags such as "-uc": code follows when they end in a code flag
            if not arg.startswith("--") and any(
                arg.endswith(o[1:]) for o in interpreter.code_options
            ):
                return ""
            index += 2 if arg in interpreter.value_options else 1
            continue
        return arg
    return None


def hidden_code(
    argv: tuple[str, ...],
    interpreter: Interpreter,
    stdin: str | None,
    script_missing: bool,
) -> str | None:
    """Why the interpreter's program is not on its command line, or None when it is.

    ``stdin`` is what fd 0 refers to (``pipe:[n]``, a path); ``script_missing`` that the
    script named no longer exists in the container (deleted after start).
    """
    operand = script_operand(argv, interpreter)
    if operand == "":
        return None
    if operand is None:
        if stdin is None or stdin == "/dev/null" or stdin.startswith(INTERACTIVE):
            return None
        return f"reads its program from stdin ({stdin})"
    if FROM_DESCRIPTOR.match(operand):
        return f"reads its program from a descriptor ({operand})"
    if operand.startswith("/memfd:"):
        return f"runs a script held in memory ({operand})"
    if script_missing:
        return f"runs script {operand}, deleted after start"
    return None


def launcher_reasons(
    comm: str, argv: tuple[str, ...], exe: Executable | None, launcher: str | None
) -> tuple[Reason, ...]:
    """Weightless reasons naming a launcher and any renames, for the evidence."""
    out: list[Reason] = []
    if launcher:
        out.append(Reason("launcher", launcher, 0.0))
    if exe is None or not argv:
        return tuple(out)
    name = PurePosixPath(exe.path).name
    argv0 = PurePosixPath(argv[0]).name
    if launcher is None and name in MULTI_CALL:
        applet = argv0 if argv0 != name else (argv[1] if len(argv) > 1 else "")
        out.append(Reason("launcher", f"{name} multi-call binary running applet {applet!r}", 0.0))
        return tuple(out)
    renamed = argv0 and not argv[0].startswith("-") and not name.startswith(argv0)
    if launcher is None and renamed and not argv0.startswith(name):
        out.append(Reason("argv0-renamed", f"argv[0] is {argv[0]!r}, runs {exe.path}", 0.0))
    if launcher is None and comm and not name.startswith(comm) and not argv0.startswith(comm):
        out.append(Reason("comm-renamed", f"names itself {comm!r}, runs {exe.path}", 0.0))
    return tuple(out)

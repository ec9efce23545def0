"""Masquerading executables: pure checks on what a process claims to be and where it runs from.

Miners hide as kernel threads (``kworker/0:1``, ``kthreadd``, ``kswapd0``): a kernel thread has
no executable, so such a name on a process with a real one is a lie. Droppers run from
writable scratch space (/tmp, /dev/shm), from hidden directories, from memory (memfd), or
delete their binary after start, or run a binary that is not in the container's image at all
(written into its writable overlay layer after start: downloaded, dropped or modified). None of
these alone is a detection; each adds weight.
"""

from __future__ import annotations

from node_agent.kernel.procfs import Executable
from node_agent.records import Reason

NOT_HIDING = frozenset(
    {".", "..", ".pyenv", ".local", ".venv", ".cargo", ".rustup", ".nvm", ".sdkman", ".asdf",
     ".bun", ".deno", ".npm", ".volta", ".krew", ".dotnet", ".gradle", ".m2"}
)  # fmt: skip
"""Dot-directories where toolchains install binaries by design (pip --user, pyenv, cargo...)."""

KERNEL_THREAD_PREFIXES = (
    "kworker",
    "kthreadd",
    "kswapd",
    "ksoftirqd",
    "kdevtmpfs",
    "migration/",
    "rcu_",
    "watchdog/",
    "kauditd",
    "khugepaged",
    "kcompactd",
    "jbd2/",
    "ksmd",
    "kblockd",
    "kintegrityd",
)
SCRATCH_DIRS = ("/tmp/", "/dev/shm/", "/var/tmp/", "/run/shm/")  # noqa: S108 - matched, not used
W_KERNEL_NAME = 0.5
W_MEMFD = 0.5
W_DELETED = 0.35
W_SCRATCH = 0.25
W_HIDDEN = 0.25
W_NOT_IN_IMAGE = 0.3


def _kernel_like(name: str) -> bool:
    bare = name.strip("[]").strip()
    return bool(bare) and bare.startswith(KERNEL_THREAD_PREFIXES)


def reasons(
    comm: str,
    argv: tuple[str, ...],
    exe: Executable | None,
    kernel_thread: bool,
    *,
    upper_layer: bool | None = None,
) -> tuple[Reason, ...]:
    """Every masquerade signal of one process (empty for genuine kernel threads).

    ``upper_layer`` says whether the executable sits in the container's writable layer.
    """
    if kernel_thread or exe is None:
        return ()
    found: list[Reason] = []
    argv0 = argv[0] if argv else ""
    claimed = next((n for n in (comm, argv0) if _kernel_like(n)), None)
    if claimed is not None:
        found.append(
            Reason(
                "kernel-thread-name",
                f"calls itself {claimed!r} but runs executable {exe.path}",
                W_KERNEL_NAME,
            )
        )
    if exe.memfd:
        found.append(Reason("memfd-executable", f"runs from memory ({exe.path})", W_MEMFD))
    elif exe.deleted:
        found.append(
            Reason(
                "deleted-executable", f"executable {exe.path} was deleted after start", W_DELETED
            )
        )
    if exe.path.startswith(SCRATCH_DIRS):
        found.append(
            Reason("scratch-executable", f"runs from scratch space: {exe.path}", W_SCRATCH)
        )
    parts = exe.path.split("/")[:-1]
    hidden = next((p for p in parts if p.startswith(".") and p not in NOT_HIDING), None)
    if hidden is not None:
        found.append(Reason("hidden-directory", f"runs from hidden directory {hidden!r}", W_HIDDEN))
    if upper_layer:
        found.append(
            Reason(
                "not-in-image",
                f"executable {exe.path} is not in the image: "
                "written into the container after it started",
                W_NOT_IN_IMAGE,
            )
        )
    return tuple(found)

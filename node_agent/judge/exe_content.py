"""What a process's executable contains, scanned once per file version.

The exec layer opens /proc/PID/exe (which reaches the binary even when it was deleted or
lives in a memfd) and the exec gate hands over the fanotify event's descriptor; both land
here. Verdicts are remembered per (device, inode, size, mtime, ctime), so a node running the
same few binaries all day scans each once; a rewritten file is a new key. The cache is shared
by the agent loop and the gate thread.
"""

from __future__ import annotations

import os
import stat

from minerguard.cache import BoundedCache
from minerguard.signatures.content import LIMIT, ContentScanner, ContentVerdict
from node_agent import errors
from node_agent.kernel.procfs import ProcFS
from node_agent.records import Reason

SIGNAL = "miner-content"
_Key = tuple[int, int, int, int, int]


class ExecutableContent:
    """A bounded cache of content verdicts in front of a ``ContentScanner``."""

    def __init__(self, scanner: ContentScanner, limit: int = LIMIT, capacity: int = 4096) -> None:
        self._scanner = scanner
        self._limit = limit
        self._cache: BoundedCache[_Key, ContentVerdict] = BoundedCache(capacity, locked=True)
        self.scanned = 0

    def of_fd(self, fd: int) -> Reason | None:
        """The evidence in the regular file open at ``fd`` (None when there is none)."""
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return None
        key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        verdict = self._cache.get(key)
        if verdict is None:
            verdict = self._scanner.scan(
                lambda offset, size: os.pread(fd, size, offset), self._limit
            )
            self.scanned += 1
            self._cache.put(key, verdict)
        if not verdict.hits:
            return None
        return Reason(SIGNAL, verdict.describe(), verdict.score)

    def of_mapping(self, proc: ProcFS, pid: int, start: str, end: str) -> Reason | None:
        """The evidence in the file ``pid`` maps at ``start-end`` (a program a loader runs)."""
        fd = proc.open_map_file(pid, start, end)
        try:
            return self.of_fd(fd)
        except OSError as err:
            raise errors.AccessDenied(pid, f"map_files: {err}") from err
        finally:
            os.close(fd)

    def of_process(self, proc: ProcFS, pid: int) -> Reason | None:
        """The evidence in the executable ``pid`` runs; raises ProcessGone or AccessDenied."""
        fd = proc.open_exe(pid)
        try:
            return self.of_fd(fd)
        except OSError as err:
            raise errors.AccessDenied(pid, f"exe: {err}") from err
        finally:
            os.close(fd)

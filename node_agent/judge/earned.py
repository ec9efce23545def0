"""Verdicts earned by behaviour, applied at exec to re-spawned copies.

Behaviour needs seconds of evidence; a watchdog that restarts its miner after every kill
would make it start over each time. Once behaviour reports a process, the verdict is kept for
what identifies it: the pod, the executable file (device, inode, size, mtime: the same bytes)
and the program's argv. A new process in that pod running the same file with the same argv
is the same miner: the exec layer reports it with the earned verdict (and the policy's kill
then lands within the exec layer's settle time), without waiting for its behaviour again. A
dropper that forks the miner and exits within a millisecond never lives to be read at exec:
while any verdict is held, forks are looked at too (the child has the dropper's executable
and argv, which is what the reported miner had).

Bounded (oldest first out); pods without an earned verdict cost one set lookup per exec.
"""

from __future__ import annotations

from dataclasses import dataclass

from minerguard.cache import BoundedCache
from node_agent.records import Finding

Identity = tuple[int, int, int, int]
"""(st_dev, st_ino, st_size, st_mtime_ns) of an executable."""


@dataclass(frozen=True, slots=True)
class Earned:
    """A behaviour finding and the process it was made on."""

    finding: Finding
    pid: int


class EarnedVerdicts:
    """(pod, executable, argv) → the behaviour finding that earned the verdict."""

    def __init__(self, capacity: int = 1024) -> None:
        self._verdicts: BoundedCache[tuple[str, Identity, tuple[str, ...]], Earned] = BoundedCache(
            capacity, on_evict=self._evicted
        )
        self._pods: dict[str, int] = {}

    def _evicted(self, key: tuple[str, Identity, tuple[str, ...]], _value: Earned) -> None:
        left = self._pods.get(key[0], 0) - 1
        if left > 0:
            self._pods[key[0]] = left
        else:
            self._pods.pop(key[0], None)

    @property
    def active(self) -> bool:
        """Whether any verdict is held (only then are forks looked at)."""
        return bool(self._pods)

    def has_pod(self, pod_uid: str | None) -> bool:
        """Whether any verdict was earned in this pod (the cheap check made on every exec)."""
        return pod_uid is not None and pod_uid in self._pods

    def remember(
        self, pod_uid: str, identity: Identity, argv: tuple[str, ...], finding: Finding
    ) -> None:
        """Keep ``finding`` for processes of ``pod_uid`` running ``identity`` with ``argv``."""
        key = (pod_uid, identity, argv)
        if self._verdicts.peek(key) is None:
            self._pods[pod_uid] = self._pods.get(pod_uid, 0) + 1
        self._verdicts.put(key, Earned(finding=finding, pid=finding.pid or 0))

    def recall(self, pod_uid: str, identity: Identity, argv: tuple[str, ...]) -> Earned | None:
        """The verdict earned by the same executable and argv in the same pod, if any."""
        return self._verdicts.peek((pod_uid, identity, argv))

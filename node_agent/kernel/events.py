"""Process lifecycle events and the Protocol every event source implements.

The proc connector delivers events as they happen; a /proc rescan finds what it missed (events
dropped under load, processes started before the agent, argv rewritten after exec). The agent
only sees ``EventSource``, so tests inject either one, or a scripted source.
"""

from __future__ import annotations

import enum
from typing import NamedTuple, Protocol


class EventKind(enum.Enum):
    """What happened to a process."""

    FORK = "fork"
    EXEC = "exec"
    EXIT = "exit"


class ProcEvent(NamedTuple):
    """One lifecycle event; ``parent`` is set for FORK, ``exit_code`` for EXIT.

    A NamedTuple, not a frozen dataclass: a busy node makes thousands a second, and a tuple
    is built in half the time.
    """

    kind: EventKind
    pid: int
    timestamp_ns: int
    parent: int | None = None
    exit_code: int | None = None
    rescan: bool = False


class EventSource(Protocol):
    """Anything that yields process events: the proc connector, a /proc rescan, a test script."""

    @property
    def dropped(self) -> int:
        """Events known to be lost (kernel buffer overruns)."""
        ...

    def fileno(self) -> int | None:
        """A descriptor to wait on, or None when the source is polled on a timer."""
        ...

    def poll(self, timeout: float) -> list[ProcEvent]:
        """Events available within ``timeout`` seconds (possibly none)."""
        ...

    def close(self) -> None:
        """Release kernel resources."""
        ...

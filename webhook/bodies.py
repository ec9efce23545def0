"""Reading request bodies under a deadline and a per-worker memory budget.

A webhook replica must survive any number of clients it cannot authenticate: slow ones
that trickle a body and never finish, large ones, and many of both at once. Three bounds:

* a size cap (:attr:`~webhook.settings.WebhookSettings.max_request_bytes`): a declared
  ``Content-Length`` over it is refused before a byte of the body is read, a streamed one as
  soon as it passes it;
* a deadline (``body_timeout``): the whole request arrives in time or its connection is
  closed (:mod:`webhook.connections`, one timer per request), and a body still waiting for
  memory at the deadline is refused (503);
* a budget (``inflight_bytes``): every body in flight holds a :class:`Lease` on a FIFO byte
  semaphore, for its raw size while it is read (the declared length up front, so a slow
  client cannot grow past its share) and then for :func:`parsed_cost`, the most its parsed
  JSON can occupy, until its answer is sent. A request that would exceed the budget waits
  without being read (uvicorn stops reading the socket when the app does not consume it), in
  arrival order, so a stream of new attackers cannot starve an earlier honest review. A
  sixth of the budget is kept for bodies that declare at most :data:`SMALL` bytes (nearly
  every review), so the few large bodies a client can afford to hold do not shut out small
  ones: filling that share takes hundreds of slow connections, not a dozen.

The API server sends a review's body at once, over a fast link, within its own
``timeoutSeconds``; a client slower than ``body_timeout`` is not an API server.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field

from starlette.requests import ClientDisconnect
from starlette.types import Receive, Scope

__all__ = [
    "Budget",
    "Budgets",
    "ClientDisconnect",
    "Lease",
    "TooLarge",
    "declared_length",
    "parsed_cost",
    "read",
]

# What orjson's objects can cost per byte of JSON (measured with tracemalloc, rounded up):
# a dict or list ~64 B, a string ~50 B (two quotes), a number or element ~32 B (a comma).
_PER_CONTAINER = 64
_PER_QUOTE = 16
_PER_COMMA = 32
_WORST = 32
SMALL = 64 * 1024
"""Bodies up to this size (most reviews) are charged ``_WORST`` times their size."""


class TooLarge(Exception):
    """The body exceeds the size cap, or could never fit in the memory budget."""


def parsed_cost(body: bytes | bytearray) -> int:
    """Bytes the body and its parsed JSON may occupy together, counted from its punctuation.

    A body of ``[{},{},...]`` parses to ~24x its size, a pod of environment variables to
    ~8x, a long script to ~1x: charging the raw size alone would let a small hostile body
    take far more memory than its share. Counting four bytes costs ~1 ms per MiB; a body
    under :data:`SMALL` is charged the worst ratio instead, without counting.
    """
    if len(body) <= SMALL:
        return _WORST * len(body)
    containers = body.count(b"{") + body.count(b"[")
    return (
        len(body)
        + _PER_CONTAINER * containers
        + _PER_QUOTE * body.count(b'"')
        + _PER_COMMA * body.count(b",")
    )


@dataclass
class Budget:
    """A byte semaphore served in arrival order; one per worker process."""

    capacity: int
    used: int = 0
    _waiters: deque[tuple[int, asyncio.Future[None]]] = field(default_factory=deque)

    async def acquire(self, size: int, deadline: float) -> None:
        """Take ``size`` bytes, waiting behind earlier requests until ``deadline`` (loop time).

        Raises:
            TooLarge: ``size`` could never fit.
            TimeoutError: the deadline passed first.
        """
        if size > self.capacity:
            raise TooLarge
        if not self._waiters and self.used + size <= self.capacity:
            self.used += size
            return
        granted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (size, granted)
        self._waiters.append(entry)
        try:
            async with asyncio.timeout_at(deadline):
                await granted
        except BaseException:
            if granted.done() and not granted.cancelled():
                self.release(size)  # granted just as it was cancelled
            else:
                self._waiters.remove(entry)
                self._wake()
            raise

    def release(self, size: int) -> None:
        """Give ``size`` bytes back and wake the waiters that now fit, in order."""
        self.used -= size
        self._wake()

    def _wake(self) -> None:
        while self._waiters and self.used + self._waiters[0][0] <= self.capacity:
            size, granted = self._waiters.popleft()
            self.used += size
            granted.set_result(None)


@dataclass
class Budgets:
    """A worker's body budget: a share for small bodies only, the rest for any."""

    small: Budget
    large: Budget

    @classmethod
    def of(cls, total: int) -> Budgets:
        """Split ``total`` bytes: a sixth (at least one small body's worst charge) is kept."""
        small = min(max(total // 6, _WORST * SMALL), total)
        return cls(Budget(small), Budget(max(total - small, 1)))

    def lease(self, scope: Scope) -> Lease:
        """A lease on the share this request's declared length entitles it to."""
        declared = declared_length(scope)
        small = declared is not None and declared <= SMALL
        return Lease(self.small if small else self.large)


def declared_length(scope: Scope) -> int | None:
    """The request's ``Content-Length``; None when absent; -1 when not a number."""
    for name, value in scope["headers"]:
        if name == b"content-length":
            return int(value) if value.isdigit() else -1
    return None


@dataclass
class Lease:
    """What one request holds of a :class:`Budget`; grows, and is released once."""

    budget: Budget
    held: int = 0

    async def hold(self, size: int, deadline: float) -> None:
        """Hold at least ``size`` bytes in all, waiting until ``deadline`` at most.

        Raises:
            TooLarge: ``size`` exceeds the whole budget: it could never be held.
            TimeoutError: the deadline passed first.
        """
        if size <= self.held:
            return
        if size > self.budget.capacity:
            raise TooLarge
        await self.budget.acquire(size - self.held, deadline)
        self.held = size

    def release(self) -> None:
        """Give everything back (idempotent)."""
        held, self.held = self.held, 0
        if held:
            self.budget.release(held)


async def read(
    scope: Scope, receive: Receive, limit: int, lease: Lease, deadline: float
) -> bytearray:
    """The request body, refused beyond ``limit`` bytes and charged to ``lease`` as it comes.

    A slow sender is cut off by the connection's deadline (``receive`` then reports the
    disconnect); waiting for memory ends at ``deadline``. The caller releases the lease.
    """
    declared = declared_length(scope)
    if declared is not None:
        if not 0 <= declared <= limit:
            raise TooLarge
        await lease.hold(declared, deadline)
    chunks = bytearray()
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect
        chunk = message.get("body", b"")
        if len(chunks) + len(chunk) > limit:
            raise TooLarge
        await lease.hold(len(chunks) + len(chunk), deadline)
        chunks += chunk
        if not message.get("more_body", False):
            return chunks

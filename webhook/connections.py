"""Connections under a deadline for each whole request, and a cap on how many are open.

uvicorn bounds only the time between requests (``timeout_keep_alive``); a client that
opens a connection and sends its request a byte at a time, or stops half-way, holds the
connection, its TLS buffers and the body read so far for ever. This protocol closes a
connection whose request (head and body) has not fully arrived within ``timeout`` seconds
of its first byte (or of the connection), and closes at once a connection beyond
``max_connections`` open in this worker. Together with :mod:`webhook.bodies` no number of
idle or slow clients can hold more than ``max_connections`` x (TLS buffers + 64 KiB) plus
the body budget of a replica's memory. A timer per request costs ~1 us; an
``asyncio.timeout`` around every read in the app would cost several.

Not covered: the TLS handshake, which completes before a protocol sees the connection; the
event loop bounds it (60 s, asyncio's ``ssl_handshake_timeout``).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger(__name__)


class RequestDeadline(HttpToolsProtocol):
    """uvicorn's httptools protocol with a whole-request deadline and a connection cap."""

    def __init__(self, *args: Any, timeout: float, max_connections: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.timeout = timeout
        self.max_connections = max_connections
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Count the connection; refuse it beyond the cap, else start the deadline."""
        super().connection_made(transport)
        if len(self.connections) > self.max_connections:
            log.warning("connection refused: %d open", len(self.connections) - 1)
            transport.close()
            return
        self._arm()

    def on_message_begin(self) -> None:
        """A request starts: all of it must arrive in time (re-armed after keep-alive)."""
        super().on_message_begin()
        if self._timer is None:
            self._arm()

    def on_message_complete(self) -> None:
        """The whole request arrived; answering it is bounded by the review's deadline."""
        self._disarm()
        super().on_message_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        """Stop the timer with the connection."""
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._timer = asyncio.get_running_loop().call_later(self.timeout, self._expire)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expire(self) -> None:
        self._timer = None
        log.debug("closing %s: request not received within %gs", self.client, self.timeout)
        self.transport.close()  # the app, if reading, sees http.disconnect

"""A bounded background writer of MinerDetections and Events.

Callers on a hot path (admission, exec events) hand a detection over and return at once.
Writes are retried with backoff while the API server is unavailable, in order, so a short
outage loses nothing; only a full queue drops, and every drop is counted. Names are fixed
before the first attempt, so a retry after a lost answer finds ``409`` and counts as written.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from kubernetes import client

from minerguard.api.detection import MinerDetection
from minerguard.kube import errors, resources

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Item:
    detection: MinerDetection | None
    event: resources.EventSpec | None


class Reporter:
    """Queue detections (and their Events) for writing by one worker thread."""

    def __init__(
        self,
        client_factory: Callable[[], client.ApiClient],
        *,
        capacity: int = 1000,
        source: str = resources.COMPONENT,
        max_backoff: float = 10.0,
        event_timeout: float | None = None,
    ) -> None:
        self._factory = client_factory
        self._api: client.ApiClient | None = None
        self._queue: collections.deque[_Item] = collections.deque()
        self._capacity = capacity
        self._source = source
        self._max_backoff = max_backoff
        self._event_timeout = event_timeout
        self._cond = threading.Condition()
        self._closing = False
        self._busy = False
        self.written = 0
        self.dropped = 0
        self.retried = 0
        self.failed = 0
        self.events_written = 0
        self._thread = threading.Thread(target=self._run, name="minerguard-reporter", daemon=True)
        self._thread.start()

    @property
    def pending(self) -> int:
        """Items waiting to be written."""
        return len(self._queue)

    def submit(
        self, detection: MinerDetection | None, event: resources.EventSpec | None = None
    ) -> bool:
        """Queue a detection and/or an Event; False (and counted) when the queue is full."""
        if detection is not None and not detection.metadata.name:
            prefix = (detection.spec.pod_name or "detection")[:40].rstrip("-.") or "detection"
            name = f"{prefix}-{detection.spec.layer.value.lower()}-{secrets.token_hex(4)}"
            metadata = detection.metadata.model_copy(update={"name": name})
            detection = detection.model_copy(update={"metadata": metadata})
        with self._cond:
            if self._closing or len(self._queue) >= self._capacity:
                self.dropped += 1
                return False
            self._queue.append(_Item(detection, event))
            self._cond.notify()
        return True

    def flush(self, timeout: float) -> bool:
        """Wait until everything queued is written (or given up); False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._queue or self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.05))
        return True

    def close(self, timeout: float = 5.0) -> None:
        """Write what can be written within ``timeout``, then stop."""
        self.flush(timeout)
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join(timeout)

    def _write(self, item: _Item) -> None:
        if self._api is None:
            self._api = self._factory()
        if item.detection is not None:
            # A conflict means an earlier attempt whose answer was lost did write it.
            with contextlib.suppress(errors.Conflict):
                resources.create_detection(self._api, item.detection)
        if item.event is not None:
            resources.create_event(self._api, item.event, self._source, self._event_timeout)
            self.events_written += 1

    def _run(self) -> None:
        backoff = 0.1
        while True:
            with self._cond:
                while not self._queue and not self._closing:
                    self._cond.wait()
                if not self._queue:
                    return
                item = self._queue[0]
                self._busy = True
            try:
                self._write(item)
            except errors.ApiError as err:
                if err.retryable or isinstance(err, errors.ConfigError):
                    self.retried += 1
                    self._api = None  # ask the factory again: credentials or address may change
                    log.warning("API unavailable, retrying in %.1fs: %s", backoff, err)
                    with self._cond:
                        self._busy = False
                        if self._closing:
                            return
                        self._cond.wait(backoff)
                    backoff = min(backoff * 2, self._max_backoff)
                    continue
                self.failed += 1
                log.error("dropping a detection the API refused: %s", err)
            with self._cond:
                self._queue.popleft()
                self._busy = False
                self.written += item.detection is not None
                self._cond.notify_all()
            backoff = 0.1

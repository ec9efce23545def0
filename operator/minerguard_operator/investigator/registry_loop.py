"""The investigator's registry reads: one long-lived event loop on a thread of its own.

:class:`~minerguard.oci.provenance.ProvenanceReader` is async (httpx), and an
``httpx.AsyncClient`` with its pooled connections is bound to the loop that made it; the
investigator gathers on plain threads. So one loop runs for the operator's lifetime, the client
and reader are made on it, and each gathering thread hands it a coroutine with
:func:`asyncio.run_coroutine_threadsafe` and waits a bounded time. Connections, the digest
cache and the tag cache are then shared by every investigation, which is what makes a second
detection of the same digest cost no registry call.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import Sequence

from minerguard.api.investigation import ImageProvenance
from minerguard.oci import auth, egress, provenance, registry
from minerguard_operator.settings import OperatorSettings

log = logging.getLogger(__name__)

SLACK_SECONDS = 2.0
"""Waited beyond the reader's own timeout (which bounds one whole read) before giving up."""


class RegistryLoop:
    """The loop, client and reader, started on first use and stopped by :meth:`close`."""

    def __init__(self, settings: OperatorSettings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._client: registry.RegistryClient | None = None
        self._reader: provenance.ProvenanceReader | None = None

    def _started(self) -> tuple[asyncio.AbstractEventLoop, provenance.ProvenanceReader]:
        with self._lock:
            if self._loop is None or self._reader is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(
                    target=loop.run_forever, name="investigator-registry", daemon=True
                )
                thread.start()
                own = self.settings

                async def make() -> tuple[registry.RegistryClient, provenance.ProvenanceReader]:
                    made = registry.RegistryClient(
                        insecure=own.registry_insecure,
                        policy=egress.AddressPolicy.of(own.registry_allowed_networks),
                    )
                    reader = provenance.ProvenanceReader(
                        made, max_tags=own.max_tags, timeout=own.registry_timeout
                    )
                    return made, reader

                self._client, self._reader = asyncio.run_coroutine_threadsafe(make(), loop).result(
                    10
                )
                self._loop, self._thread = loop, thread
            return self._loop, self._reader

    def read(
        self,
        image: str,
        digest: str | None,
        unknowns: list[str],
        *,
        trusted: Sequence[str],
        executable: str | None,
        creds: auth.Credentials | None,
        platform: str | None = None,
    ) -> tuple[ImageProvenance | None, int, bool]:
        """(provenance, registry calls, cached); what could not be read goes to ``unknowns``.

        ``platform`` (``linux/arm64``): the node's, so an index digest's history is the one the
        node pulled; None lets the reader guess (and say so).
        """
        loop, reader = self._started()
        budget = self.settings.registry_timeout + SLACK_SECONDS
        pending = asyncio.run_coroutine_threadsafe(
            reader.read(
                image,
                digest,
                trusted=tuple(trusted),
                executable=executable,
                creds=creds,
                platform=platform,
            ),
            loop,
        )
        try:
            read = pending.result(budget)
        except concurrent.futures.TimeoutError:
            pending.cancel()
            unknowns.append(
                f"the registry of {image} did not answer within {budget:g}s: provenance unknown"
            )
            return None, 0, False
        unknowns.extend(read.unknowns)
        return read.provenance, read.registry_calls, read.cached

    def close(self) -> None:
        """Cancel what is in flight, close the client's connections, stop the loop's thread.

        In-flight reads are cancelled and awaited on the loop itself: a coroutine left pending
        when the loop stops would be closed later by the garbage collector, outside its task.
        """
        with self._lock:
            loop, self._loop = self._loop, None
            thread, self._thread = self._thread, None
            made, self._client, self._reader = self._client, None, None
        if loop is None:
            return

        async def shutdown() -> None:
            current = asyncio.current_task()
            pending = [task for task in asyncio.all_tasks() if task is not current]
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            if made is not None:
                await made.aclose()

        try:
            asyncio.run_coroutine_threadsafe(shutdown(), loop).result(5)
        except (concurrent.futures.TimeoutError, RuntimeError) as err:
            log.info("registry reads not stopped cleanly: %s", err)
        loop.call_soon_threadsafe(loop.stop)
        if thread is not None:
            thread.join(5)
            if not thread.is_alive():
                loop.close()

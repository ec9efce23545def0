"""The serving certificate, reloaded in place when its files change on disk.

cert-manager and kubelet's secret volumes replace the files (an atomic symlink swap) without
telling anyone. uvicorn builds its ``SSLContext`` once, so :class:`ReloadingTLS` is given to
it as the ``ssl_context_factory``: it builds the context in each worker process and polls the
files' identity (inode, size, mtime) on the event loop. On change it loads the new chain into
the same context, which every later handshake uses; a half-written or mismatched pair is
refused by OpenSSL and retried on the next tick, while the old certificate keeps serving.
Reloading on the loop thread means no handshake ever sees a context being modified.

With a client CA (``--client-ca``) every caller must present a certificate it signed: the API
server does when its AdmissionConfiguration gives it a kubeconfig for the webhook. Only that CA
is trusted for clients (never the system's store), and a handshake without a certificate or with
one from another CA fails before a byte of HTTP is read. A renewed CA file is added to the trust
store when it changes; a CA dropped from the file stays trusted until the process restarts.
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

Fingerprint = tuple[tuple[int, int, int], ...]

reloads = 0
"""Successful reloads in this process (exported as a metric)."""


def server_context(cert: Path, key: Path, client_ca: Path | None = None) -> ssl.SSLContext:
    """A TLS server context with the standard library's secure defaults, HTTP/1.1 only.

    With ``client_ca``, callers must present a certificate signed by it (and only by it: the
    purpose-CLIENT_AUTH default context loads no system CAs).
    """
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(["http/1.1"])
    context.load_cert_chain(cert, key)
    if client_ca is not None:
        context.load_verify_locations(cafile=client_ca)
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def fingerprint(*paths: Path) -> Fingerprint:
    """What changes when a file is rewritten or its symlink is swapped."""
    found = []
    for path in paths:
        stat = path.stat()
        found.append((stat.st_ino, stat.st_size, stat.st_mtime_ns))
    return tuple(found)


class CertificateWatcher:
    """Polls the key pair (and the client CA) and reloads ``context`` when they change."""

    def __init__(
        self,
        context: ssl.SSLContext,
        cert: Path,
        key: Path,
        interval: float,
        client_ca: Path | None = None,
    ) -> None:
        self.context = context
        self.cert = cert
        self.key = key
        self.client_ca = client_ca
        self.interval = interval
        self._seen = fingerprint(*self._files())
        self._handle: asyncio.TimerHandle | None = None

    def check(self) -> bool:
        """Reload if the files changed; True when a new chain is in use."""
        global reloads  # noqa: PLW0603 - a process-wide counter read by the metrics
        try:
            current = fingerprint(*self._files())
        except OSError as err:
            log.warning("TLS files unreadable, keeping the current certificate: %s", err)
            return False
        if current == self._seen:
            return False
        try:
            self.context.load_cert_chain(self.cert, self.key)
            if self.client_ca is not None:
                self.context.load_verify_locations(cafile=self.client_ca)
        except (OSError, ssl.SSLError) as err:
            log.warning("new TLS certificate not usable yet, keeping the current one: %s", err)
            return False
        self._seen = current
        reloads += 1
        log.info("TLS certificate reloaded from %s", self.cert)
        return True

    def _files(self) -> tuple[Path, ...]:
        return (
            (self.cert, self.key)
            if self.client_ca is None
            else (self.cert, self.key, self.client_ca)
        )

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Check every ``interval`` seconds on ``loop``."""

        def tick() -> None:
            self.check()
            self._handle = loop.call_later(self.interval, tick)

        self._handle = loop.call_later(self.interval, tick)

    def stop(self) -> None:
        """Stop polling."""
        if self._handle is not None:
            self._handle.cancel()


class ReloadingTLS:
    """uvicorn's ``ssl_context_factory``: picklable, so it crosses into worker processes."""

    def __init__(
        self, cert: Path, key: Path, interval: float, client_ca: Path | None = None
    ) -> None:
        self.cert = Path(cert)
        self.key = Path(key)
        self.client_ca = None if client_ca is None else Path(client_ca)
        self.interval = interval
        self.watcher: CertificateWatcher | None = None

    def __call__(self, config: Any, default: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
        """Build the context and start watching (uvicorn calls this inside the server loop)."""
        context = server_context(self.cert, self.key, self.client_ca)
        self.watcher = CertificateWatcher(
            context, self.cert, self.key, self.interval, self.client_ca
        )
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            log.warning("no event loop at TLS setup (pid %d): certificate not watched", os.getpid())
        else:
            self.watcher.start(loop)
        return context

"""``minerguard webhook``: flags → settings → uvicorn serving the app over HTTPS.

The flags are a stable interface (the chart and people run them). Each flag overrides its
``MINERGUARD_WEBHOOK_*`` variable. With ``--workers N`` uvicorn spawns N processes; the app
factory and the TLS factory are picklable objects carrying the settings, so each worker
builds the same app and watches the certificate files itself.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import logging
import os
import sys
from pathlib import Path
from typing import Any, cast

import uvicorn
from fastapi import FastAPI
from pydantic import ValidationError
from uvicorn.supervisors import Multiprocess

from minerguard.compiled_policy import load_policy_files
from minerguard.errors import PolicyError
from webhook import connections
from webhook.app import create_app
from webhook.settings import WebhookSettings
from webhook.tls import ReloadingTLS

log = logging.getLogger("webhook")


def parser() -> argparse.ArgumentParser:
    """The command line; every default is None so unset flags leave the environment's value."""
    cli = argparse.ArgumentParser(
        prog="minerguard webhook",
        description="Serve the minerguard validating admission webhook over HTTPS.",
        argument_default=None,
    )
    cli.add_argument("--host", help="address to listen on (default 0.0.0.0)")
    cli.add_argument("--port", type=int, help="HTTPS port (default 8443)")
    cli.add_argument("--tls-cert", type=Path, metavar="FILE", help="PEM certificate chain")
    cli.add_argument("--tls-key", type=Path, metavar="FILE", help="PEM private key")
    cli.add_argument(
        "--client-ca",
        type=Path,
        metavar="FILE",
        help="PEM CA: require callers' TLS client certificates signed by it (the API server's)",
    )
    cli.add_argument(
        "--policy-file",
        dest="policy_files",
        type=Path,
        action="append",
        metavar="FILE",
        help="MinerPolicy YAML (repeatable); the fallback when the cluster has none",
    )
    cli.add_argument(
        "--insecure-registry",
        dest="insecure_registries",
        action="append",
        metavar="HOST:PORT",
        help="registry read over plain HTTP (repeatable)",
    )
    cli.add_argument("--workers", type=int, help="worker processes (default 1)")
    cli.add_argument("--kube-server", metavar="URL", help="API server URL (else in-cluster)")
    cli.add_argument("--registry-timeout", type=float, metavar="SECONDS")
    cli.add_argument("--log-level", choices=["critical", "error", "warning", "info", "debug"])
    return cli


def settings_from(argv: list[str]) -> WebhookSettings:
    """Settings from flags over the environment; raises SystemExit(2) with a message."""
    args = parser().parse_args(argv)
    given: dict[str, Any] = {k: v for k, v in vars(args).items() if v is not None}
    if given.get("insecure_registries") is not None:
        given["insecure_registries"] = tuple(given["insecure_registries"])
    if given.get("policy_files") is not None:
        given["policy_files"] = tuple(given["policy_files"])
    try:
        settings = WebhookSettings(**given)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        print(f"minerguard webhook: {where}: {first['msg']}", file=sys.stderr)
        raise SystemExit(2) from err
    if settings.tls_cert is None or settings.tls_key is None:
        print("minerguard webhook: --tls-cert and --tls-key are required", file=sys.stderr)
        raise SystemExit(2)
    if settings.in_cluster is None:
        detected = bool(os.environ.get("KUBERNETES_SERVICE_HOST"))
        settings = settings.model_copy(update={"in_cluster": detected})
    return settings


class AppFactory:
    """Builds the app inside each worker (picklable: it only carries the settings)."""

    def __init__(self, settings: WebhookSettings) -> None:
        self.settings = settings

    def __call__(self) -> FastAPI:
        """The app for this process."""
        return create_app(self.settings)


def server_config(settings: WebhookSettings) -> uvicorn.Config:
    """The uvicorn configuration for these settings."""
    assert settings.tls_cert is not None  # noqa: S101 - checked by settings_from
    assert settings.tls_key is not None  # noqa: S101
    return uvicorn.Config(
        AppFactory(settings),
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        ssl_context_factory=ReloadingTLS(
            settings.tls_cert, settings.tls_key, settings.tls_reload_seconds, settings.client_ca
        ),
        log_level=settings.log_level,
        access_log=False,
        lifespan="on",
        server_header=False,
        timeout_keep_alive=60,
        http=cast(
            "type[asyncio.Protocol]",
            functools.partial(  # a partial of a module-level class: picklable for --workers
                connections.RequestDeadline,
                timeout=settings.body_timeout,
                max_connections=settings.max_connections,
            ),
        ),
    )


def main(argv: list[str] | None = None) -> int:
    """Run the webhook until interrupted; 2 on bad flags or policies."""
    settings = settings_from(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    for path in (settings.tls_cert, settings.tls_key, settings.client_ca):
        if path is not None and not path.is_file():
            print(f"minerguard webhook: {path}: no such file", file=sys.stderr)
            return 2
    try:
        load_policy_files(settings.policy_files)  # fail here, not in every worker
    except PolicyError as err:
        print(f"minerguard webhook: {err}", file=sys.stderr)
        return 2
    config = server_config(settings)
    if settings.workers == 1:
        server = uvicorn.Server(config)
        server.run()
        return 0 if server.started else 1
    Multiprocess(config, sockets=[config.bind_socket()]).run()
    return 0

"""``minerguard operator``: flags over ``MINERGUARD_OPERATOR_*`` settings, then kopf.

:func:`main` runs the operator until SIGINT/SIGTERM; :func:`operate` runs it in the current event
loop until told to stop (tests, benchmarks). Both hand kopf the handlers'
:data:`~minerguard_operator.handlers.registry` and one
:class:`~minerguard_operator.runtime.Runtime` in its memo.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import threading
from collections.abc import Sequence
from typing import Any

import kopf

from minerguard_operator.handlers import build_runtime, registry
from minerguard_operator.runtime import Runtime
from minerguard_operator.settings import OperatorSettings

log = logging.getLogger("minerguard.operator")
DESCRIPTION = "minerguard's operator: kopf handlers for MinerPolicy and MinerDetection."


# -- entry point --------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> OperatorSettings:
    """Flags over ``MINERGUARD_OPERATOR_*`` environment variables."""
    parser = argparse.ArgumentParser(prog="minerguard operator", description=DESCRIPTION)
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument(
        "--namespace",
        "-n",
        action="append",
        dest="namespaces",
        help="watch only these (repeatable)",
    )
    scope.add_argument(
        "--all-namespaces", "-A", action="store_true", help="watch all namespaces (default)"
    )
    parser.add_argument("--standalone", action="store_true", default=None, help="no peering")
    parser.add_argument("--peering", dest="peering_name", help="kopf peering object name")
    parser.add_argument("--priority", type=int, help="peering priority (highest is active)")
    parser.add_argument(
        "--liveness", dest="liveness_endpoint", help="e.g. http://0.0.0.0:8081/healthz"
    )
    parser.add_argument("--kube-server", help="plain-http API URL, else in-cluster or kubeconfig")
    parser.add_argument("--metrics-port", type=int, help="Prometheus /metrics port (0: off)")
    parser.add_argument("--log-format", choices=["plain", "full", "json"])
    parser.add_argument("--verbose", action="store_true", default=None)
    args = vars(parser.parse_args(argv))
    if args.pop("all_namespaces"):
        args["namespaces"] = []
    return OperatorSettings(**{k: v for k, v in args.items() if v is not None})


def operator_kwargs(rt: Runtime) -> dict[str, Any]:
    """Arguments for ``kopf.run``/``kopf.operator`` from the settings."""
    own = rt.settings
    return {
        "registry": registry,
        "memo": kopf.Memo(runtime=rt),
        "standalone": not rt.peering,
        "peering_name": own.peering_name if rt.peering else None,
        "priority": own.priority,
        "liveness_endpoint": own.liveness_endpoint,
        "clusterwide": not own.namespaces,
        "namespaces": own.namespaces,
        "identity": rt.identity,
    }


async def operate(
    rt: Runtime,
    *,
    ready_flag: threading.Event | asyncio.Event | None = None,
    stop_flag: threading.Event | asyncio.Event | None = None,
) -> None:
    """Run the operator in the current event loop until ``stop_flag`` (tests, benchmarks)."""
    await kopf.operator(ready_flag=ready_flag, stop_flag=stop_flag, **operator_kwargs(rt))


def main(argv: list[str] | None = None) -> int:
    """``minerguard operator``: run until SIGINT/SIGTERM."""
    try:
        settings = parse_args(argv)
    except ValueError as err:  # pydantic's ValidationError for bad environment values
        log.error("invalid settings: %s", err)
        return 2
    kopf.configure(verbose=settings.verbose, log_format=kopf.LogFormat[settings.log_format.upper()])
    kopf.run(**operator_kwargs(build_runtime(settings)))
    return 0

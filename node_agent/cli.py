"""``minerguard agent``: the node agent's command line (flags are stable; see the README).

Without ``--no-cluster`` it runs in-cluster (``incluster``): pods, policies and reports through
the API; the same ``--proc-root``/``--cgroup-root``/``--policy-file``/``--duration`` flags
apply, and ``MINERGUARD_AGENT_*`` variables (the chart's env) fill in the rest.

Exit codes: 0 after a clean run (or ``--duration`` elapsed), 2 for usage or policy errors,
3 when a required kernel feature is missing.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from minerguard.errors import PolicyError
from node_agent import errors
from node_agent.output.report import PrintSink
from node_agent.settings import AgentSettings
from node_agent.wiring import build_agent

log = logging.getLogger("node_agent")


def parser() -> argparse.ArgumentParser:
    """The argument parser of ``minerguard agent``."""
    p = argparse.ArgumentParser(
        prog="minerguard agent",
        description="Watch this node's processes and containers for cryptominers.",
    )
    p.add_argument("--no-cluster", action="store_true", help="run without a cluster")
    p.add_argument("--policy-file", type=Path, help="MinerPolicy YAML (default: embedded)")
    p.add_argument("--proc-root", type=Path, help="procfs root (default /proc)")
    p.add_argument("--cgroup-root", type=Path, help="cgroupfs root (default /sys/fs/cgroup)")
    p.add_argument("--duration", type=float, help="exit after SECONDS")
    p.add_argument("--output", choices=("text", "json"), help="detection format on stdout")
    return p


def settings_from(args: argparse.Namespace) -> AgentSettings:
    """Environment settings with the flags that were given laid over them."""
    given: dict[str, Any] = {
        "policy_file": args.policy_file,
        "proc_root": args.proc_root,
        "cgroup_root": args.cgroup_root,
        "duration": args.duration,
        "output": args.output,
    }
    overrides = {k: v for k, v in given.items() if v is not None}
    if args.no_cluster:
        overrides["no_cluster"] = True
    return AgentSettings(**overrides)


def main(argv: list[str] | None = None) -> int:
    """Run the agent; returns the process exit code."""
    args = parser().parse_args(argv)
    try:
        settings = settings_from(args)
    except ValidationError as err:
        print(f"minerguard agent: invalid settings: {err}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not settings.no_cluster:
        from node_agent import incluster  # noqa: PLC0415 - only in-cluster needs the API

        stop = threading.Event()
        install_signal_handlers(stop)
        return incluster.run(settings, stop)
    sink = PrintSink(sys.stdout, settings.output)
    try:
        agent = build_agent(settings, sink)
    except PolicyError as err:
        print(f"minerguard agent: policy: {err}", file=sys.stderr)
        return 2
    except errors.KernelFeatureError as err:
        print(f"minerguard agent: {err}", file=sys.stderr)
        return 3
    stop = threading.Event()
    install_signal_handlers(stop)
    agent.run(duration=settings.duration, stop=stop)
    return 0


def install_signal_handlers(stop: threading.Event) -> None:
    """SIGTERM/SIGINT end the loop cleanly (the DaemonSet's pod deletion sends SIGTERM)."""
    if threading.current_thread() is not threading.main_thread():
        return

    def handler(_signum: int, _frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)

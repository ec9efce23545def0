"""The ``minerguard`` command: one image, one entry point, every component.

Components are named here as entry-point strings and imported only when chosen, so the
shared library never depends on the webhook, the agent or the operator (import-linter
checks that), and ``minerguard scan`` starts without loading FastAPI or kopf.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Sequence

from minerguard import __version__

COMPONENTS = {
    "scan": "minerguard.scan:main",
    "investigate": "minerguard.report.cli:main",
    "signatures": "minerguard.signatures.table:main",
    "webhook": "webhook.cli:main",
    "agent": "node_agent.cli:main",
    "operator": "minerguard_operator.cli:main",
}

USAGE = f"""usage: minerguard {{scan,investigate,signatures,webhook,agent,operator}} [ARGS...]

minerguard {__version__}: layered cryptominer defence for Kubernetes.

  scan      check manifests offline, exactly as admission would (exit 1 on deny)
  investigate  show a MinerDetection's investigation and timeline (text, json or html)
  signatures  print the built-in bundle's scoring table (--table)
  webhook   serve the validating admission webhook over HTTPS
  agent     run the node agent (exec signatures and behaviour)
  operator  run the operator (policy status, enforcement on detections)

Run `minerguard COMMAND --help` for a command's options.
"""


def _load(target: str) -> Callable[[list[str]], int]:
    module_name, _, attribute = target.partition(":")
    module = importlib.import_module(module_name)
    entry: Callable[[list[str]], int] = getattr(module, attribute)
    return entry


def main(argv: Sequence[str] | None = None) -> int:
    """Dispatch to a component."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in {"-h", "--help", "help"}:
        print(USAGE)
        return 0 if args else 2
    if args[0] == "--version":
        print(__version__)
        return 0
    command, rest = args[0], args[1:]
    if command not in COMPONENTS:
        print(f"minerguard: unknown command {command!r}\n\n{USAGE}", file=sys.stderr)
        return 2
    try:
        return _load(COMPONENTS[command])(rest)
    except BrokenPipeError:  # `minerguard scan ... | head` is not an error
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())

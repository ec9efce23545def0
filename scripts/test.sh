#!/usr/bin/env bash
# The whole test suite: set-up, lint, layering, types, CRD drift, then every test, the slow
# `artifact` ones (wheel and image built and run) included. Arguments go to pytest:
#   scripts/test.sh -m "not artifact"   everything but the artifact tests
#   scripts/test.sh --quick [ARGS]      lint, layering and tests/unit only: the edit loop (seconds)
#   scripts/test.sh --quick --lf        ... only the unit tests that failed last time
# Tests that need root or a kernel feature skip outside CI; with CI=true a skip of them fails.
set -euo pipefail
cd "$(dirname "$0")/.."
quick=false
if [ "${1:-}" = --quick ]; then
  quick=true
  shift
fi
scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"

echo "== ruff";          ruff check .
                         ruff format --check .
echo "== import-linter"; lint-imports
if $quick; then
  echo "== pytest tests/unit"
  exec pytest tests/unit "$@"
fi
echo "== mypy";          mypy minerguard webhook node_agent operator/minerguard_operator tests bench
echo "== CRDs";          python -m minerguard.api.crds --check
echo "== pytest";        pytest "$@"

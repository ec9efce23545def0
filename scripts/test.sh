#!/usr/bin/env bash
# The whole test suite: set-up, lint, types, layering, CRD drift, then every test.
# Tests that need root or a kernel feature skip outside CI; with CI=true a skip of them fails.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"

echo "== ruff";          ruff check .
                         ruff format --check .
# operator/ is a folder of kopf handler files, checked by path (see README).
handlers=(); [ -f operator/main.py ] && handlers=(operator/main.py)
echo "== mypy";          mypy minerguard webhook node_agent "${handlers[@]}" tests bench
echo "== import-linter"; lint-imports
echo "== CRDs";          python -m minerguard.api.crds --check
echo "== pytest";        pytest "$@"

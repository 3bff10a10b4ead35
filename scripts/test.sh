#!/usr/bin/env bash
# The full test suite: lint, types, then pytest against a real PostgreSQL.
# AICOLLECT_TEST_DATABASE_URL selects the server; without it the tests start an embedded one.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
scripts/ensure_system_deps.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy .
exec .venv/bin/python -m pytest "$@"

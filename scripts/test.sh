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
# Most tests wait on real servers (PostgreSQL, the emulators, our processes) rather than
# compute, so three workers (pytest-xdist) finish the suite in about a third of the time
# even on two cores. AICOLLECT_TEST_WORKERS=1 runs it in this process, one test at a time.
workers=${AICOLLECT_TEST_WORKERS:-3}
parallel=()
if [ "$workers" -gt 1 ]; then
  parallel=(-n "$workers" --dist worksteal)
fi
exec .venv/bin/python -m pytest "${parallel[@]}" "$@"

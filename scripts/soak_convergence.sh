#!/usr/bin/env bash
# Long soak of the convergence property (tests/e2e/test_convergence.py): N random bookkeeper
# scripts (default 2000), each played with perfect webhook delivery and with lossy delivery
# plus one CDC poll, against the real pipeline and PostgreSQL. Stops at the first script
# whose two runs end differently and prints it; otherwise prints how many passed and how
# long they took. Extra arguments go to pytest (e.g. --hypothesis-seed=7 to repeat a run).
#
#   scripts/soak_convergence.sh [N] [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."
examples="${1:-2000}"
shift || true
export AICOLLECT_CONVERGENCE_EXAMPLES="$examples"
start=$(date +%s)
# --timeout=0: the suite's per-test limit is for the default run, not for a soak.
.venv/bin/python -m pytest tests/e2e/test_convergence.py -k lossy_webhooks -x -q \
    --timeout=0 --hypothesis-show-statistics "$@"
echo "convergence soak: ${examples} examples passed in $(($(date +%s) - start)) s"

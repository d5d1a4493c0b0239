#!/usr/bin/env bash
# The test command (README, and .ci/run): installs what the tests need, then lint + the suite.
#   bash hack/test.sh [PYTEST ARGS...]
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ $(id -u) == 0 ]]; then
  bash hack/install-runtime.sh
  TUGBOAT_TEST_POSTGRES=$(bash hack/start-postgres.sh)
  export TUGBOAT_TEST_POSTGRES
fi
py=$(bash hack/venv.sh test)
PATH="$(dirname "$py"):$(cd "$(dirname "$(bash hack/get-kubectl.sh)")" && pwd):$PATH"
export PATH
"$py" -m ruff check .
"$py" -m ruff format --check .
"$py" -m pytest -q -p no:cacheprovider "$@"

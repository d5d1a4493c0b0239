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
python3 -m pip install -q -e '.[test]' 2>&1 | grep -v -e '^WARNING: Location' -e 'Running pip as' || true
PATH="$(cd "$(dirname "$(bash hack/get-kubectl.sh)")" && pwd):$PATH"
export PATH
ruff check .
ruff format --check .
python3 -m pytest -q -p no:cacheprovider "$@"

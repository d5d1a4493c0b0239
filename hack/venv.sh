#!/usr/bin/env bash
# Makes sure .venv holds tugboat (editable) with the given extras; prints its python.
#   hack/venv.sh [EXTRAS]     e.g. hack/venv.sh test
# A virtualenv because Debian 12's system Python refuses system-wide pip installs (PEP 668).
# TUG_PYTHON=/path/to/python skips the virtualenv and installs into that interpreter instead.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
extras=${1:-}
spec="$repo"
[[ -n $extras ]] && spec="$repo[$extras]"
quiet() { grep -v -e '^WARNING: Location' -e 'Running pip as' -e '^\[notice\]' >&2 || true; }
if [[ -n ${TUG_PYTHON:-} ]]; then
    py=$TUG_PYTHON
else
    command -v python3 >/dev/null || { apt-get update -qq && apt-get install -y -qq python3; }
    python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
        { echo "tugboat needs Python >= 3.11" >&2; exit 1; }
    if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv
    fi
    [[ -x $repo/.venv/bin/python ]] || python3 -m venv "$repo/.venv"
    py=$repo/.venv/bin/python
fi
stamp="$repo/.venv/.installed-$(sha1sum "$repo/pyproject.toml" | cut -c1-12)-${extras:-base}"
if [[ -n ${TUG_PYTHON:-} || ! -e $stamp ]]; then
    "$py" -m pip install -q -e "$spec" 2>&1 | quiet
    [[ -n ${TUG_PYTHON:-} ]] || touch "$stamp"
fi
echo "$py"

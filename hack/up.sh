#!/usr/bin/env bash
# One command from a fresh Debian 12 machine (as root) to a running tugboat cluster with the
# example app answering:
#
#   hack/up.sh [TUG-UP-FLAGS...]        e.g. hack/up.sh --nodes 2
#
# 1. installs the runtime packages (hack/install-runtime.sh: containerd, runc, CNI, busybox, gcc)
# 2. installs tugboat into a virtualenv at .venv (hack/venv.sh) and links /usr/local/bin/tug;
#    fetches the real kubectl (hack/get-kubectl.sh) and links /usr/local/bin/kubectl if absent
# 3. tug up --runtime containerd --nodes 1 (data dir ~/.tugboat, or $TUG_DATA_DIR)
# 4. applies manifests/examples/web.yaml and waits until its three pods answer HTTP
# Every step is idempotent: run it again at any time.
#
# Settings: TUG_PYTHON=/path/to/python uses that interpreter instead of .venv (tugboat is
# pip-installed into it only when it cannot import it yet); TUG_DATA_DIR as for tug up.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
say() { printf '\n==> %s\n' "$*"; }
die() { echo "hack/up.sh: $*" >&2; exit 1; }

[[ $(id -u) -eq 0 ]] || die "must run as root (containerd, bridges and cgroups need it)"

say "runtime packages"
"$repo/hack/install-runtime.sh"

say "python package"
py=$(bash "$repo/hack/venv.sh")
link=$(dirname "$py")/tug
if [[ -z ${TUG_PYTHON:-} && -x $link && ! -e /usr/local/bin/tug ]]; then
    ln -s "$link" /usr/local/bin/tug
    echo "linked /usr/local/bin/tug -> $link"
fi

say "kubectl (hack/get-kubectl.sh)"
if kubectl=$(PATH="$(dirname "$py"):$PATH" bash "$repo/hack/get-kubectl.sh"); then  # venv's pip
    if ! command -v kubectl >/dev/null; then
        ln -s "$(realpath "$kubectl")" /usr/local/bin/kubectl
        echo "linked /usr/local/bin/kubectl -> $(realpath "$kubectl")"
    fi
else
    echo "could not fetch kubectl: the tour's kubectl steps need it (tug does not)" >&2
fi

say "cluster"
"$py" -m cli.cluster.up --runtime containerd --nodes 1 "$@"

say "example app (manifests/examples/web.yaml)"
data_dir=${TUG_DATA_DIR:-$HOME/.tugboat}
for ((i = 1; i <= $#; i++)); do
    case ${!i} in
        --data-dir) j=$((i + 1)); data_dir=${!j} ;;
        --data-dir=*) data_dir=${!i#--data-dir=} ;;
    esac
done
"$py" -m cli.cluster.example --data-dir "$data_dir"

cat <<EOF

tugboat is running, and the example app answers at the addresses above. Then:

  export KUBECONFIG=$data_dir/kubeconfig    # tug and kubectl read it
  tug get pods -o wide                      # the three web pods, one IP each
  kubectl get deploy,svc                    # the real kubectl on the same cluster
  python3 -c "import urllib.request as u; print(u.urlopen('http://<pod IP>:8080/').read().decode())"
  tug apply -f $repo/manifests/examples/busybox.yaml && tug exec -it busybox -- sh

The README's tour continues from here; the tests run with hack/test.sh.
EOF

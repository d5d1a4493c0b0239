#!/usr/bin/env bash
# Install the container runtime packages tugboat's containerd runtime needs (Debian 12, as root).
# Idempotent: runs `apt-get update` and `apt-get install` only when a package is missing.
set -euo pipefail

PACKAGES=(containerd runc containernetworking-plugins busybox-static gcc iptables iproute2 docker-registry umoci skopeo)

if [[ $(id -u) -ne 0 ]]; then
    echo "install-runtime.sh: must run as root" >&2
    exit 1
fi

missing=()
for pkg in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$pkg")
    fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
    echo "install-runtime.sh: all present (${PACKAGES[*]})"
    exit 0
fi

echo "install-runtime.sh: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"

# The Debian package enables a system containerd; tugboat runs its own instances only.
if command -v systemctl >/dev/null 2>&1 && systemctl is-system-running >/dev/null 2>&1; then
    systemctl disable --now containerd >/dev/null 2>&1 || true
    systemctl disable --now docker-registry >/dev/null 2>&1 || true  # tug registry up runs its own
fi
echo "install-runtime.sh: done"

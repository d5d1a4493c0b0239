#!/usr/bin/env bash
# Run (or stop) tugboat's own containerd instance: own root, state, socket, runc root, CNI.
#
#   hack/start-containerd.sh [--bridge NAME] [--pod-cidr CIDR] DIR [SOCKET]
#   hack/start-containerd.sh --stop DIR [SOCKET]
#   hack/start-containerd.sh --foreground [--bridge NAME] [--pod-cidr CIDR] DIR [SOCKET]
#
# Start writes DIR/containerd.toml (containerd config v2 with the CRI settings RUNTIME.md lists)
# and DIR/cni/conf/10-tugboat.conflist (bridge + host-local + portmap), starts containerd in the
# background (log DIR/containerd.log, pid DIR/containerd.pid) and returns once the socket
# answers. It is a no-op when that instance already runs. SOCKET defaults to DIR/containerd.sock.
#
# Stop removes every pod sandbox through CRI (so CNI releases IPs and NAT rules), stops the
# daemon and its shims, unmounts what is left under DIR, deletes the bridge, its masquerade
# chain and the CNI cache entries of this network, and -- when no other tugboat containerd
# runs -- the global CNI-HOSTPORT-* chains and the ip_forward setting the bridge plugin turned on.
#
# Foreground writes the same files and then becomes containerd (exec; its log on stdout and
# stderr, its pid in DIR/containerd.pid), for a supervisor that restarts it when it exits
# (tug up). An instance of DIR already running in the background is stopped first.
#
# Settings (flags win over environment): TUG_BRIDGE (tug0), TUG_POD_CIDR (10.244.0.0/24),
# TUG_SANDBOX_IMAGE (localhost/tugboat/pause:1). Must run as root.
set -euo pipefail

MARKER="# tugboat-containerd"
bridge=${TUG_BRIDGE:-tug0}
pod_cidr=${TUG_POD_CIDR:-10.244.0.0/24}
sandbox_image=${TUG_SANDBOX_IMAGE:-localhost/tugboat/pause:1}
mode=start
args=()
while [[ $# -gt 0 ]]; do
    case $1 in
        --stop) mode=stop; shift ;;
        --foreground) mode=foreground; shift ;;
        --bridge) bridge=$2; shift 2 ;;
        --pod-cidr) pod_cidr=$2; shift 2 ;;
        --sandbox-image) sandbox_image=$2; shift 2 ;;
        -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
        *) args+=("$1"); shift ;;
    esac
done
if [[ ${#args[@]} -lt 1 || ${#args[@]} -gt 2 ]]; then
    echo "usage: $0 [--stop|--foreground] [--bridge NAME] [--pod-cidr CIDR] DIR [SOCKET]" >&2
    exit 2
fi
[[ $(id -u) -eq 0 ]] || { echo "start-containerd.sh: must run as root" >&2; exit 1; }

mkdir -p "${args[0]}"
dir=$(cd "${args[0]}" && pwd)
socket=${args[1]:-$dir/containerd.sock}
pidfile=$dir/containerd.pid
# The stop path uses the settings the instance was started with.
if [[ $mode == stop && -f $dir/instance.env ]]; then
    # shellcheck disable=SC1091
    source "$dir/instance.env"
fi
network_name=tugboat-$bridge
repo=$(cd "$(dirname "$0")/.." && pwd)

log() { echo "start-containerd.sh: $*" >&2; }

running_pid() {
    [[ -f $pidfile ]] || return 1
    local pid
    pid=$(cat "$pidfile")
    [[ -n $pid && -d /proc/$pid ]] && grep -q containerd "/proc/$pid/comm" 2>/dev/null || return 1
    echo "$pid"
}

answers() { ctr -a "$socket" version >/dev/null 2>&1; }

# PIDs of processes named $1 (as in /proc/PID/comm); builtins only, /proc can be long.
pids_named() {
    local c name
    for c in /proc/[0-9]*/comm; do
        read -r name 2>/dev/null <"$c" || continue
        [[ $name == "$1" ]] && { c=${c#/proc/}; echo "${c%/comm}"; }
    done
    return 0
}

# The shims of this instance: their command line holds "-address <our socket>".
pids_using_socket() {
    local pid
    for pid in $(pids_named containerd-shim); do
        tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -qF -- "-address $socket " &&
            echo "$pid"
    done
    return 0
}

# True if another tugboat containerd (not ours) is running.
other_instances() {
    local pid cfg
    for pid in $(pids_named containerd); do
        cfg=$(tr '\0' '\n' 2>/dev/null <"/proc/$pid/cmdline" | sed -n '/^--config$/{n;p}')
        [[ -n $cfg && $cfg != "$dir/containerd.toml" ]] || continue
        grep -qF "$MARKER" "$cfg" 2>/dev/null && return 0
    done
    return 1
}

write_config() {
    mkdir -p "$dir/root" "$dir/state" "$dir/runc" "$dir/opt" "$dir/cni/conf" "$dir/cni/ipam" \
        "$(dirname "$socket")"
    cat >"$dir/containerd.toml" <<EOF
$MARKER (written by hack/start-containerd.sh; edits are overwritten)
version = 2
root = "$dir/root"
state = "$dir/state"
oom_score = 0

[grpc]
  address = "$socket"

[debug]
  level = "info"

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "$dir/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$sandbox_image"
  restrict_oom_score_adj = true
  disable_apparmor = true
  enable_selinux = false
  systemd_cgroup = false
  netns_mounts_under_state_dir = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"

[plugins."io.containerd.grpc.v1.cri".containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"

[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
  BinaryName = "/usr/sbin/runc"
  Root = "$dir/runc"
  SystemdCgroup = false

[plugins."io.containerd.grpc.v1.cri".cni]
  bin_dir = "/usr/lib/cni"
  conf_dir = "$dir/cni/conf"
  max_conf_num = 1
EOF
    cat >"$dir/cni/conf/10-tugboat.conflist" <<EOF
{
  "cniVersion": "0.4.0",
  "name": "$network_name",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$bridge",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "$dir/cni/ipam",
        "ranges": [[{"subnet": "$pod_cidr"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF
}

# The bridge with its gateway address, made now rather than by CNI at the first pod, so host
# services pods talk to (the API server's advertise address) can listen on it from the start.
# The CNI bridge plugin adopts an existing bridge that already has the gateway address.
ensure_bridge() {
    local gateway
    gateway=$(python3 -c 'import ipaddress, sys; n = ipaddress.ip_network(sys.argv[1]); print(f"{next(n.hosts())}/{n.prefixlen}")' "$pod_cidr")
    ip link show "$bridge" >/dev/null 2>&1 || ip link add "$bridge" type bridge
    ip -4 addr show dev "$bridge" | grep -q " ${gateway} " || ip addr add "$gateway" dev "$bridge"
    ip link set "$bridge" up
}

# Pod traffic leaving the pod network is masqueraded by one static chain per bridge, made here
# once: the bridge plugin's ipMasq would add (and on teardown remove) a chain per pod, several
# iptables runs on every pod start and stop. Same rules: nothing within the pod CIDR or to
# multicast is rewritten.
masq_chain() { echo "TUG-MASQ-$bridge"; }

ensure_masquerade() {
    local chain
    chain=$(masq_chain)
    iptables -t nat -N "$chain" 2>/dev/null || iptables -t nat -F "$chain"
    iptables -t nat -A "$chain" -d "$pod_cidr" -j RETURN
    iptables -t nat -A "$chain" -d 224.0.0.0/4 -j RETURN
    iptables -t nat -A "$chain" -j MASQUERADE
    iptables -t nat -C POSTROUTING -s "$pod_cidr" -j "$chain" 2>/dev/null ||
        iptables -t nat -A POSTROUTING -s "$pod_cidr" -j "$chain"
}

remove_masquerade() {
    local chain
    chain=$(masq_chain)
    while iptables -t nat -D POSTROUTING -s "$pod_cidr" -j "$chain" 2>/dev/null; do :; done
    iptables -t nat -F "$chain" 2>/dev/null || true
    iptables -t nat -X "$chain" 2>/dev/null || true
}

prepare() {
    command -v containerd >/dev/null || { log "containerd not installed (hack/install-runtime.sh)"; exit 1; }
    write_config
    ensure_bridge
    ensure_masquerade
    printf 'bridge=%q\npod_cidr=%q\n' "$bridge" "$pod_cidr" >"$dir/instance.env"
    [[ -f $dir/ip_forward.orig ]] || cat /proc/sys/net/ipv4/ip_forward >"$dir/ip_forward.orig"
    rm -f "$socket"
}

start() {
    if running_pid >/dev/null && answers; then
        log "already running (pid $(running_pid), socket $socket)"
        return 0
    fi
    prepare
    setsid containerd --config "$dir/containerd.toml" >>"$dir/containerd.log" 2>&1 </dev/null &
    echo $! >"$pidfile"
    local deadline=$((SECONDS + 30))
    until answers; do
        if ! running_pid >/dev/null; then
            log "containerd exited; last log lines:"
            tail -n 20 "$dir/containerd.log" >&2
            exit 1
        fi
        if ((SECONDS > deadline)); then
            log "containerd did not answer on $socket within 30s"
            exit 1
        fi
        sleep 0.1
    done
    log "running (pid $(cat "$pidfile"), socket $socket, bridge $bridge, pod CIDR $pod_cidr)"
}

foreground() {
    local pid
    if pid=$(running_pid); then
        log "stopping the background instance (pid $pid) to run in the foreground"
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 100); do [[ -d /proc/$pid ]] || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
    fi
    prepare
    echo $$ >"$pidfile"
    log "exec containerd (pid $$, socket $socket, bridge $bridge, pod CIDR $pod_cidr)"
    exec containerd --config "$dir/containerd.toml" </dev/null
}

stop() {
    local pid
    if pid=$(running_pid) && answers; then
        # Remove pods through CRI so CNI tears down IPs, veths and NAT rules.
        (cd "$repo" && timeout 120 python -m kubelet.cri --endpoint "unix://$socket" remove-all) ||
            log "CRI cleanup failed; continuing"
    fi
    if pid=$(running_pid); then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 100); do [[ -d /proc/$pid ]] || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$pidfile"
    # Containers left behind (CRI cleanup failed): kill them with our own runc root.
    if [[ -d $dir/runc/k8s.io ]]; then
        for id in $(runc --root "$dir/runc/k8s.io" list -q 2>/dev/null); do
            runc --root "$dir/runc/k8s.io" delete --force "$id" >/dev/null 2>&1 || true
        done
    fi
    for pid in $(pids_using_socket); do kill -KILL "$pid" 2>/dev/null || true; done
    # Mounts under DIR (rootfs overlays, netns, shm), deepest first.
    awk -v d="$dir/" 'index($2, d) == 1 {print $2}' /proc/self/mounts | sort -r |
        while read -r m; do umount -l "$m" 2>/dev/null || true; done
    ip link del "$bridge" 2>/dev/null || true
    remove_masquerade
    rm -f /var/lib/cni/results/"$network_name"-* 2>/dev/null || true
    rm -rf "$dir/cni/ipam"
    if ! other_instances; then
        for chain in CNI-HOSTPORT-DNAT CNI-HOSTPORT-SETMARK CNI-HOSTPORT-MASQ; do
            iptables -t nat -F "$chain" 2>/dev/null || true
        done
        iptables -t nat -D PREROUTING -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT 2>/dev/null || true
        iptables -t nat -D OUTPUT -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT 2>/dev/null || true
        iptables -t nat -D POSTROUTING -m comment --comment "CNI portfwd requiring masquerade" -j CNI-HOSTPORT-MASQ 2>/dev/null || true
        for chain in CNI-HOSTPORT-DNAT CNI-HOSTPORT-SETMARK CNI-HOSTPORT-MASQ; do
            iptables -t nat -X "$chain" 2>/dev/null || true
        done
        if [[ -f $dir/ip_forward.orig ]]; then
            cat "$dir/ip_forward.orig" >/proc/sys/net/ipv4/ip_forward || true
        fi
    fi
    rm -f "$dir/ip_forward.orig" "$socket" "$socket.ttrpc"
    log "stopped (dir $dir)"
}

"$mode"

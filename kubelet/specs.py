"""Pure translation of a pod (a plain dict) into CRI sandbox and container configs.

Contracts:

- Namespaces: network POD (NODE with ``hostNetwork``), pid CONTAINER (POD with
  ``shareProcessNamespace``, NODE with ``hostPID``), ipc POD (NODE with ``hostIPC``), so a
  container's own process is PID 1, as with the Kubernetes kubelet.
- Seccomp: containers get **RuntimeDefault unless the pod or container asks for**
  ``Unconfined`` (Kubernetes defaults to Unconfined; tugboat chooses the safer default).
  ``Localhost`` profiles are passed through. The sandbox (only the pause process) gets the
  pod-level profile when the pod sets one, else RuntimeDefault only when the pod's containers
  see its process (``shareProcessNamespace``, ``hostPID``: they could drive pause to make
  syscalls for them) and Unconfined otherwise, as with Kubernetes' default: no workload runs
  there, and installing the filter costs runc ~20 ms of CPU per pod.
- Cgroups: the sandbox and its containers live in the pod's cgroup, placed by QoS class as
  the kubelet's cgroupfs driver does: ``<cgroup_root>/kubepods/pod<uid>`` (Guaranteed),
  ``.../kubepods/burstable/pod<uid>``, ``.../kubepods/besteffort/pod<uid>`` (its limits:
  :mod:`kubelet.cgroups`); a container's cpu shares come from requests, the CFS quota and the
  memory limit from limits, the OOM score from the QoS class, as the kubelet computes them.
- Command/args pass through unchanged: the runtime applies Kubernetes' ENTRYPOINT/CMD rules
  (``command`` replaces the entrypoint and drops CMD; ``args`` alone replaces CMD).
- Env: built by :func:`kubelet.env.environment` (values, downward API, ConfigMaps, Secrets,
  ``envFrom``), then ``$(VAR)`` expansion of command and args (``$$`` escapes), like Kubernetes.
- Mounts: the CRI ``Mount`` entries the caller resolved (:mod:`kubelet.volumes`).
- Logs go to ``<log_root>/<namespace>_<name>_<uid>/<container>/<restartCount>.log``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from machinery.quantity import cpu_millis, to_bytes

from . import labels as L
from .cri import api_pb2 as pb
from .env import EnvContext, Sources, environment, expand

Obj = dict[str, Any]

CPU_PERIOD = 100_000
MIN_SHARES = 2
MAX_SHARES = 262_144
MIN_QUOTA = 1000  # microseconds per period
MAX_HOSTNAME = 63
DEFAULT_GRACE = 30
MASKED_PATHS = (
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
)
READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")
_PROTOCOLS = {"TCP": pb.TCP, "UDP": pb.UDP, "SCTP": pb.SCTP}


@dataclass(frozen=True)
class NodeContext:
    """What the translation needs to know about the node."""

    name: str
    ip: str = "127.0.0.1"
    log_root: str = "/var/log/pods"
    cgroup_root: str = "/tugboat"
    cluster_dns: tuple[str, ...] = ("10.96.0.10",)
    cluster_domain: str = "cluster.local"
    memory_capacity: int = 0  # bytes, for the Burstable OOM score
    cpu_capacity_millis: int = 1000  # for resourceFieldRef of an unset cpu limit
    root_dir: str = "/var/lib/tugboat/kubelet"  # pod volumes live under <root_dir>/pods/<uid>
    extra: dict[str, str] = field(default_factory=dict)


def meta(pod: Obj) -> Obj:
    return pod.get("metadata") or {}


def spec(pod: Obj) -> Obj:
    return pod.get("spec") or {}


def pod_uid(pod: Obj) -> str:
    return str(meta(pod).get("uid") or "")


def pod_key(pod: Obj) -> str:
    return f"{meta(pod).get('namespace', '')}/{meta(pod).get('name', '')}"


QOS_CGROUPS = {"Guaranteed": "", "Burstable": "burstable", "BestEffort": "besteffort"}


def qos_cgroup(cgroup_root: str, qos: str) -> str:
    """The QoS class's cgroup: ``<root>/kubepods`` (Guaranteed) or ``<root>/kubepods/<class>``."""
    base = f"{cgroup_root.rstrip('/')}/kubepods"
    return f"{base}/{QOS_CGROUPS[qos]}" if QOS_CGROUPS[qos] else base


def cgroup_parent(node: NodeContext, pod: Obj) -> str:
    """The pod's cgroup (the sandbox's ``cgroup_parent``), as the kubelet's cgroupfs driver."""
    return f"{qos_cgroup(node.cgroup_root, qos_class(spec(pod)))}/pod{pod_uid(pod)}"


def log_directory(node: NodeContext, pod: Obj) -> str:
    m = meta(pod)
    return f"{node.log_root.rstrip('/')}/{m.get('namespace')}_{m.get('name')}_{m.get('uid')}"


def log_path(container_name: str, restart_count: int) -> str:
    """The container's log file, relative to the sandbox's log directory."""
    return f"{container_name}/{restart_count}.log"


def grace_period(pod: Obj) -> int:
    """Seconds between SIGTERM and SIGKILL for this pod's containers right now."""
    deleting = meta(pod).get("deletionGracePeriodSeconds")
    if meta(pod).get("deletionTimestamp") and deleting is not None:
        return int(deleting)
    value = spec(pod).get("terminationGracePeriodSeconds")
    return DEFAULT_GRACE if value is None else int(value)


def container_hash(container: Obj) -> str:
    """A stable hash of a container's spec: a change means the container must be replaced."""
    return hashlib.sha256(json.dumps(container, sort_keys=True).encode()).hexdigest()[:16]


# ---------------------------------------------------------------------------------------------
# QoS and resources


def requests_and_limits(c: Obj) -> tuple[Obj, Obj]:
    """A container's (requests, limits); requests default to limits, as API defaulting does."""
    res = c.get("resources") or {}
    limits = dict(res.get("limits") or {})
    requests = dict(res.get("requests") or {})
    for k, v in limits.items():  # Kubernetes defaults requests to limits
        requests.setdefault(k, v)
    return requests, limits


def qos_class(pod_spec: Obj) -> str:
    """Guaranteed, Burstable or BestEffort (Kubernetes' rules)."""
    containers = list(pod_spec.get("containers") or []) + list(pod_spec.get("initContainers") or [])
    any_set = False
    guaranteed = True
    for c in containers:
        requests, limits = requests_and_limits(c)
        if any(k in requests or k in limits for k in ("cpu", "memory")):
            any_set = True
        for r in ("cpu", "memory"):
            if r not in limits or r not in requests or requests[r] != limits[r]:
                guaranteed = False
    if not any_set:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


def oom_score_adj(qos: str, memory_request: int, memory_capacity: int) -> int:
    if qos == "Guaranteed":
        return -997
    if qos == "BestEffort":
        return 1000
    if memory_capacity <= 0:
        return 999
    score = 1000 - (1000 * memory_request) // memory_capacity
    return max(2, min(999, int(score)))


def cpu_shares(millis: int) -> int:
    """Kubernetes' ``MilliCPUToShares``: 1024 per cpu, within [2, 262144]."""
    if millis <= 0:
        return MIN_SHARES
    return max(MIN_SHARES, min(MAX_SHARES, millis * 1024 // 1000))


def cpu_quota(millis: int, period: int = CPU_PERIOD) -> int:
    """Kubernetes' ``MilliCPUToQuota`` (at least 1 ms per period)."""
    return max(MIN_QUOTA, millis * period // 1000)


def linux_resources(c: Obj, qos: str, node: NodeContext) -> pb.LinuxContainerResources:
    """A container's CRI resources as Kubernetes' ``calculateLinuxResources``: shares from the
    cpu request (from the limit when the request is zero), a CFS quota and period only for a
    non-zero cpu limit, the memory limit, and the OOM score of its QoS class."""
    requests, limits = requests_and_limits(c)
    request = cpu_millis(requests.get("cpu", 0))
    limit = cpu_millis(limits.get("cpu", 0))
    res = pb.LinuxContainerResources(cpu_shares=cpu_shares(request or limit))
    if limit:
        res.cpu_period = CPU_PERIOD
        res.cpu_quota = cpu_quota(limit)
    if "memory" in limits:
        res.memory_limit_in_bytes = to_bytes(limits["memory"])
    memory_request = to_bytes(requests["memory"]) if "memory" in requests else 0
    res.oom_score_adj = oom_score_adj(qos, memory_request, node.memory_capacity)
    return res


# ---------------------------------------------------------------------------------------------
# security


def _seccomp(*contexts: Obj | None) -> pb.SecurityProfile:
    for ctx in contexts:
        profile = (ctx or {}).get("seccompProfile") or {}
        kind = profile.get("type")
        if kind == "Unconfined":
            return pb.SecurityProfile(profile_type=pb.SecurityProfile.Unconfined)
        if kind == "Localhost":
            return pb.SecurityProfile(
                profile_type=pb.SecurityProfile.Localhost,
                localhost_ref=str(profile.get("localhostProfile") or ""),
            )
        if kind == "RuntimeDefault":
            break
    return pb.SecurityProfile(profile_type=pb.SecurityProfile.RuntimeDefault)


def _sandbox_seccomp(pod: Obj) -> pb.SecurityProfile:
    """The pause process's profile (see the module's contracts)."""
    s = spec(pod)
    psc = s.get("securityContext") or {}
    if psc.get("seccompProfile") or s.get("shareProcessNamespace") or s.get("hostPID"):
        return _seccomp(psc)
    return pb.SecurityProfile(profile_type=pb.SecurityProfile.Unconfined)


def namespace_options(pod: Obj) -> pb.NamespaceOption:
    s = spec(pod)
    pid = pb.CONTAINER
    if s.get("hostPID"):
        pid = pb.NODE
    elif s.get("shareProcessNamespace"):
        pid = pb.POD
    return pb.NamespaceOption(
        network=pb.NODE if s.get("hostNetwork") else pb.POD,
        pid=pid,
        ipc=pb.NODE if s.get("hostIPC") else pb.POD,
    )


def _any_privileged(pod: Obj) -> bool:
    s = spec(pod)
    containers = list(s.get("containers") or []) + list(s.get("initContainers") or [])
    return any((c.get("securityContext") or {}).get("privileged") for c in containers)


# ---------------------------------------------------------------------------------------------
# sandbox


def dns_config(pod: Obj, node: NodeContext) -> pb.DNSConfig | None:
    """The pod's resolv.conf per ``dnsPolicy``; ``None`` means the host's (policy Default)."""
    s = spec(pod)
    policy = s.get("dnsPolicy") or "ClusterFirst"
    if policy == "ClusterFirst" and s.get("hostNetwork"):
        policy = "Default"
    if policy == "ClusterFirstWithHostNet":
        policy = "ClusterFirst"
    custom = s.get("dnsConfig") or {}
    if policy == "Default" and not custom:
        return None
    servers: list[str] = []
    searches: list[str] = []
    options: list[str] = []
    if policy == "ClusterFirst" and node.cluster_dns:
        ns = meta(pod).get("namespace") or "default"
        d = node.cluster_domain
        servers = list(node.cluster_dns)
        searches = [f"{ns}.svc.{d}", f"svc.{d}", d]
        options = ["ndots:5"]
    servers += [x for x in custom.get("nameservers") or [] if x not in servers]
    searches += [x for x in custom.get("searches") or [] if x not in searches]
    for opt in custom.get("options") or []:
        text = opt["name"] + (f":{opt['value']}" if opt.get("value") else "")
        options = [o for o in options if o.split(":")[0] != opt["name"]] + [text]
    if not (servers or searches or options):
        return None
    return pb.DNSConfig(servers=servers, searches=searches, options=options)


def port_mappings(pod: Obj) -> list[pb.PortMapping]:
    out = []
    for c in spec(pod).get("containers") or []:
        for p in c.get("ports") or []:
            if not p.get("hostPort"):
                continue
            out.append(
                pb.PortMapping(
                    protocol=_PROTOCOLS.get(p.get("protocol") or "TCP", pb.TCP),
                    container_port=int(p["containerPort"]),
                    host_port=int(p["hostPort"]),
                    host_ip=str(p.get("hostIP") or ""),
                )
            )
    return out


def hostname(pod: Obj) -> str:
    s = spec(pod)
    if s.get("hostNetwork"):
        return ""  # runc cannot set a hostname without its own UTS namespace
    return str(s.get("hostname") or meta(pod).get("name") or "")[:MAX_HOSTNAME].rstrip("-.")


def sandbox_config(pod: Obj, node: NodeContext, attempt: int = 0) -> pb.PodSandboxConfig:
    m, s = meta(pod), spec(pod)
    uid = pod_uid(pod)
    psc = s.get("securityContext") or {}
    sc = pb.LinuxSandboxSecurityContext(
        namespace_options=namespace_options(pod),
        privileged=_any_privileged(pod),
        seccomp=_sandbox_seccomp(pod),
    )
    if psc.get("runAsUser") is not None:
        sc.run_as_user.value = int(psc["runAsUser"])
    if psc.get("runAsGroup") is not None:
        sc.run_as_group.value = int(psc["runAsGroup"])
    sc.supplemental_groups.extend(int(g) for g in psc.get("supplementalGroups") or [])
    if psc.get("fsGroup") is not None:
        sc.supplemental_groups.append(int(psc["fsGroup"]))
    config = pb.PodSandboxConfig(
        metadata=pb.PodSandboxMetadata(
            name=str(m.get("name")), uid=uid, namespace=str(m.get("namespace")), attempt=attempt
        ),
        hostname=hostname(pod),
        log_directory=log_directory(node, pod),
        port_mappings=port_mappings(pod),
        labels=L.pod_labels(str(m.get("name")), str(m.get("namespace")), uid, node.name),
        annotations={L.GRACE_PERIOD: str(grace_period(pod))},
        linux=pb.LinuxPodSandboxConfig(
            cgroup_parent=cgroup_parent(node, pod),
            security_context=sc,
            sysctls={x["name"]: str(x["value"]) for x in psc.get("sysctls") or []},
        ),
    )
    dns = dns_config(pod, node)
    if dns is not None:
        config.dns_config.CopyFrom(dns)
    return config


# ---------------------------------------------------------------------------------------------
# containers


def container_config(
    pod: Obj,
    c: Obj,
    node: NodeContext,
    *,
    restart_count: int,
    init: bool = False,
    pod_ip: str = "",
    sources: Sources | None = None,
    mounts: list[pb.Mount] | None = None,
) -> pb.ContainerConfig:
    """The CRI config for container ``c`` of ``pod``, attempt ``restart_count``.

    Raises :class:`~kubelet.env.ConfigError` (or ``ValueError``) when the environment cannot be
    built."""
    m, s = meta(pod), spec(pod)
    env_ctx = EnvContext(pod_ip, node.ip, node.cpu_capacity_millis, node.memory_capacity)
    env, _ = environment(pod, c, sources, env_ctx)
    qos = qos_class(s)
    csc = c.get("securityContext") or {}
    psc = s.get("securityContext") or {}
    privileged = bool(csc.get("privileged"))
    sc = pb.LinuxContainerSecurityContext(
        namespace_options=namespace_options(pod),
        privileged=privileged,
        seccomp=_seccomp(csc, psc),
        readonly_rootfs=bool(csc.get("readOnlyRootFilesystem")),
        no_new_privs=csc.get("allowPrivilegeEscalation") is False,
    )
    if not privileged:
        sc.masked_paths.extend(MASKED_PATHS)
        sc.readonly_paths.extend(READONLY_PATHS)
    caps = csc.get("capabilities") or {}
    if caps:
        sc.capabilities.add_capabilities.extend(caps.get("add") or [])
        sc.capabilities.drop_capabilities.extend(caps.get("drop") or [])
    for key, target in (("runAsUser", sc.run_as_user), ("runAsGroup", sc.run_as_group)):
        value = csc.get(key, psc.get(key))
        if value is not None:
            target.value = int(value)
    sc.supplemental_groups.extend(int(g) for g in psc.get("supplementalGroups") or [])
    uid = pod_uid(pod)
    labels = L.pod_labels(str(m.get("name")), str(m.get("namespace")), uid, node.name)
    labels[L.CONTAINER_NAME] = c["name"]
    labels[L.CONTAINER_TYPE] = "init" if init else "app"
    annotations = {
        L.RESTART_COUNT: str(restart_count),
        L.CONTAINER_HASH: container_hash(c),
        L.GRACE_PERIOD: str(grace_period(pod)),
    }
    pre_stop = (c.get("lifecycle") or {}).get("preStop")
    if pre_stop:
        annotations[L.PRE_STOP] = json.dumps(pre_stop, sort_keys=True)
    return pb.ContainerConfig(
        metadata=pb.ContainerMetadata(name=c["name"], attempt=restart_count),
        image=pb.ImageSpec(image=str(c.get("image") or "")),
        command=[expand(x, env) for x in c.get("command") or []],
        args=[expand(x, env) for x in c.get("args") or []],
        working_dir=str(c.get("workingDir") or ""),
        envs=[pb.KeyValue(key=k, value=v) for k, v in env.items()],
        mounts=list(mounts or []),
        labels=labels,
        annotations=annotations,
        log_path=log_path(c["name"], restart_count),
        stdin=bool(c.get("stdin")),
        stdin_once=bool(c.get("stdinOnce")),
        tty=bool(c.get("tty")),
        linux=pb.LinuxContainerConfig(resources=linux_resources(c, qos, node), security_context=sc),
    )

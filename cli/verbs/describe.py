"""``tug describe``: a readable summary of pods, deployments, replica sets, nodes, services and
HPAs (other kinds get a generic dump), followed by their Events, found with the field selector
``involvedObject.name/namespace/uid`` as kubectl finds them. Lines and their order follow
kubectl's describers; :mod:`cli.tabwriter` lays them out column for column as kubectl does."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from cli import api
from cli.config import Session
from cli.errors import CliError
from cli.tabwriter import Writer, rfc1123z
from cli.targets import parse_targets
from machinery import errors, kinds
from machinery.kinds import ResourceType
from machinery.printers import format_label_selector, human_age
from machinery.quantity import cpu_millis, format_bytes, format_cpu, to_bytes

Obj = dict[str, Any]


def register(sub: Any) -> None:
    p = sub.add_parser("describe", help="show details of resources")
    p.add_argument("args", nargs="+", metavar="TYPE [NAME...] | TYPE/NAME")
    p.add_argument("-l", "--selector")
    p.add_argument("--show-events", default="true")
    p.set_defaults(func=run)


def run(session: Session, args: argparse.Namespace) -> int:
    targets, _ = parse_targets(session.resources, args.args)
    ns = None if session.flags.all_namespaces else session.namespace
    blocks: list[str] = []
    failed = False
    for t in targets:
        if t.names:
            objs = []
            for n in t.names:
                try:
                    objs.append(session.client.get(t.rt, n, ns or session.namespace))
                except errors.NotFound as e:
                    session.warn(f"Error from server (NotFound): {e.message}")
                    failed = True
        else:
            objs = api.list_objects(session.client, t.rt, ns, label_selector=args.selector)
        for obj in objs:
            w = Writer()
            DESCRIBERS.get(t.rt.kind, _generic)(session, t.rt, obj, w)
            if args.show_events != "false":
                _events(session, obj, w)
            blocks.append(w.render())
    if not blocks and not failed:
        raise CliError(f"no resources found in {ns} namespace" if ns else "no resources found")
    session.out.write("\n\n".join(blocks))
    return 1 if failed else 0


def _meta(obj: Obj) -> Obj:
    return obj.get("metadata") or {}


def _header(w: Writer, obj: Obj, namespaced: bool = True) -> None:
    m = _meta(obj)
    w.kv(0, "Name", m.get("name"))
    if namespaced:
        w.kv(0, "Namespace", m.get("namespace"))
    w.kv(0, "CreationTimestamp", rfc1123z(m.get("creationTimestamp")))
    w.map(0, "Labels", m.get("labels"))
    w.annotations(0, "Annotations", m.get("annotations"))


def _controlled_by(w: Writer, obj: Obj) -> None:
    for ref in _meta(obj).get("ownerReferences") or []:
        if ref.get("controller"):
            w.kv(0, "Controlled By", f"{ref.get('kind')}/{ref.get('name')}")


def _ports(ports: list[Obj], field: str) -> str:
    return ", ".join(f"{p.get(field, 0)}/{p.get('protocol', 'TCP')}" for p in ports)


def _containers(
    w: Writer, label: str, containers: list[Obj], statuses: list[Obj] | None, space: str = ""
) -> None:
    """kubectl's ``describeContainers``: with ``space`` (a pod template) the names are
    indented one more column."""
    w.write(0, f"{space}{label}:{'' if containers else ' <none>'}")
    by_name = {s.get("name"): s for s in statuses or []}
    for c in containers:
        st = by_name.get(c["name"])
        w.write(1, f"{' ' if space else ''}{c['name']}:")
        if st is not None:
            w.write(2, f"Container ID:\t{st.get('containerID', '')}")
        w.write(2, f"Image:\t{c.get('image', '')}")
        if st is not None:
            w.write(2, f"Image ID:\t{st.get('imageID', '')}")
        ports = c.get("ports") or []
        text = _ports(ports, "containerPort")
        w.kv(2, "Ports" if "," in text else "Port", text)
        text = _ports(ports, "hostPort")
        w.kv(2, "Host Ports" if "," in text else "Host Port", text)
        for key, title in (("command", "Command"), ("args", "Args")):
            if c.get(key):
                w.write(2, f"{title}:")
                for part in c[key]:
                    for piece in str(part).split("\n"):
                        w.write(3, piece)
        if st is not None:
            _state(w, "State", st.get("state") or {})
            last = st.get("lastState") or {}
            if last.get("terminated"):
                _state(w, "Last State", last)
            w.write(2, f"Ready:\t{'True' if st.get('ready') else 'False'}")
            w.write(2, f"Restart Count:\t{st.get('restartCount', 0)}")
        res = c.get("resources") or {}
        for part in ("limits", "requests"):
            if res.get(part):
                w.write(2, f"{part.capitalize()}:")
                for k, v in sorted(res[part].items()):
                    w.write(3, f"{k}:\t{v}")
        _env(w, c)
        mounts = sorted(c.get("volumeMounts") or [], key=lambda m: m.get("mountPath", ""))
        w.write(2, "Mounts:" + ("" if mounts else "\t<none>"))
        for m in mounts:
            flags = ["ro" if m.get("readOnly") else "rw"]
            if m.get("subPath"):
                flags.append(f'path="{m["subPath"]}"')
            w.write(3, f"{m.get('mountPath')} from {m.get('name')} ({','.join(flags)})")


def _state(w: Writer, title: str, state: Obj) -> None:
    if "running" in state:
        w.write(2, f"{title}:\tRunning")
        w.write(3, f"Started:\t{rfc1123z((state['running'] or {}).get('startedAt'))}")
    elif "terminated" in state:
        t = state["terminated"] or {}
        w.write(2, f"{title}:\tTerminated")
        if t.get("reason"):
            w.write(3, f"Reason:\t{t['reason']}")
        if t.get("message"):
            w.write(3, f"Message:\t{t['message']}")
        w.write(3, f"Exit Code:\t{t.get('exitCode', 0)}")
        if t.get("signal"):
            w.write(3, f"Signal:\t{t['signal']}")
        w.write(3, f"Started:\t{rfc1123z(t.get('startedAt'))}")
        w.write(3, f"Finished:\t{rfc1123z(t.get('finishedAt'))}")
    else:
        w.write(2, f"{title}:\tWaiting")
        reason = (state.get("waiting") or {}).get("reason")
        if reason:
            w.write(3, f"Reason:\t{reason}")


def _env(w: Writer, c: Obj) -> None:
    """``Environment Variables from:`` (when any) and ``Environment:`` as kubectl words them;
    values from a field are shown by path, not resolved."""
    if c.get("envFrom"):
        w.write(2, "Environment Variables from:")
    for source in c.get("envFrom") or []:
        what = "ConfigMap" if "configMapRef" in source else "Secret"
        ref = source.get("configMapRef") or source.get("secretRef") or {}
        prefix = f" with prefix '{source['prefix']}'" if source.get("prefix") else ""
        optional = "true" if ref.get("optional") else "false"
        w.write(3, f"{ref.get('name')}\t{what}{prefix}\tOptional: {optional}")
    env = c.get("env") or []
    w.write(2, "Environment:" + ("" if env else "\t<none>"))
    for e in env:
        frm = e.get("valueFrom")
        if frm is None:
            first, *more = str(e.get("value", "")).split("\n")
            w.write(3, f"{e['name']}:\t{first}")
            for line in more:
                w.write(3, f"\t{line}")
        elif "fieldRef" in frm:
            ref = frm["fieldRef"] or {}
            w.write(3, f"{e['name']}:\t ({ref.get('apiVersion', 'v1')}:{ref.get('fieldPath')})")
        elif "configMapKeyRef" in frm or "secretKeyRef" in frm:
            ref = frm.get("configMapKeyRef") or frm.get("secretKeyRef") or {}
            where = "of config map" if "configMapKeyRef" in frm else "in secret"
            optional = "true" if ref.get("optional") else "false"
            w.write(
                3,
                f"{e['name']}:\t<set to the key '{ref.get('key')}' {where} "
                f"'{ref.get('name')}'>\tOptional: {optional}",
            )
        else:
            w.write(3, f"{e['name']}:\t<set from a source>")


def _conditions(
    w: Writer, conditions: list[Obj] | None, extra: tuple[str, ...] = (), pad: str = " "
) -> None:
    """A Conditions table as kubectl's deployment and replica set describers write it (a
    space after the type; ``pad=""`` for the HPA's)."""
    if not conditions:
        return
    head = ["Type", "Status", *extra]
    w.write(0, "Conditions:")
    w.table(1, [head, ["-" * len(h) for h in head]])
    for c in conditions:
        cells = [f"{c.get('type', '')}{pad}", c.get("status", "")]
        cells += [str(c.get(e[0].lower() + e[1:], "")) for e in extra]
        w.table(1, [cells])


def _volumes(w: Writer, volumes: list[Obj], space: str = "") -> None:
    if not volumes:
        w.write(0, f"{space}Volumes:\t<none>")
        return
    w.write(0, f"{space}Volumes:")
    for v in volumes:
        w.write(1, f"{' ' if space else ''}{v.get('name')}:")
        if "emptyDir" in v:
            ed = v["emptyDir"] or {}
            w.write(2, "Type:\tEmptyDir (a temporary directory that shares a pod's lifetime)")
            w.write(2, f"Medium:\t{ed.get('medium', '')}")
            w.write(2, f"SizeLimit:\t{ed.get('sizeLimit', '<unset>')}")
        elif "configMap" in v or "secret" in v:
            src = v.get("configMap") or v.get("secret") or {}
            if "configMap" in v:
                w.write(2, "Type:\tConfigMap (a volume populated by a ConfigMap)")
                w.write(2, f"Name:\t{src.get('name')}")
            else:
                w.write(2, "Type:\tSecret (a volume populated by a Secret)")
                w.write(2, f"SecretName:\t{src.get('secretName')}")
            w.write(2, f"Optional:\t{'true' if src.get('optional') else 'false'}")
        elif "persistentVolumeClaim" in v:
            pvc = v["persistentVolumeClaim"] or {}
            w.write(2, "Type:\tPersistentVolumeClaim (a reference to a PersistentVolumeClaim "
                       "in the same namespace)")  # fmt: skip
            w.write(2, f"ClaimName:\t{pvc.get('claimName')}")
            w.write(2, f"ReadOnly:\t{'true' if pvc.get('readOnly') else 'false'}")
        elif "hostPath" in v:
            hp = v["hostPath"] or {}
            w.write(2, "Type:\tHostPath (bare host directory volume)")
            w.write(2, f"Path:\t{hp.get('path')}")
            w.write(2, f"HostPathType:\t{hp.get('type', '')}")
        else:
            w.write(2, "<unknown>")


def _tolerations(w: Writer, title: str, tolerations: list[Obj] | None) -> None:
    """kubectl's ``printPodTolerationsMultiline``."""
    texts = []
    for t in sorted(tolerations or [], key=lambda t: t.get("key", "")):
        text = t.get("key", "")
        if t.get("value"):
            text += f"={t['value']}"
        if t.get("effect"):
            text += f":{t['effect']}"
        if t.get("operator") == "Exists" and not t.get("value"):
            text += " op=Exists" if t.get("key") or t.get("effect") else "op=Exists"
        if t.get("tolerationSeconds") is not None:
            text += f" for {t['tolerationSeconds']}s"
        texts.append(text)
    w.write(0, f"{title}:\t{texts[0] if texts else '<none>'}")
    indent = title[: len(title) - len(title.lstrip())]
    for text in texts[1:]:
        w.write(0, f"{indent}\t{text}")


def _qos(pod: Obj) -> str:
    status = (pod.get("status") or {}).get("qosClass")
    if status:
        return str(status)
    containers = (pod.get("spec") or {}).get("containers") or []
    res = [c.get("resources") or {} for c in containers]
    if not any(r.get("requests") or r.get("limits") for r in res):
        return "BestEffort"
    guaranteed = all(
        (r.get("limits") or {}).get(k) is not None
        and (r.get("requests") or r.get("limits") or {}).get(k) == (r.get("limits") or {}).get(k)
        for r in res
        for k in ("cpu", "memory")
    )
    return "Guaranteed" if guaranteed else "Burstable"


def describe_pod(session: Session, rt: ResourceType, pod: Obj, w: Writer) -> None:
    spec, status, m = pod.get("spec") or {}, pod.get("status") or {}, _meta(pod)
    w.kv(0, "Name", m.get("name"))
    w.kv(0, "Namespace", m.get("namespace"))
    if spec.get("priority") is not None:
        w.kv(0, "Priority", spec["priority"])
    if spec.get("priorityClassName"):
        w.kv(0, "Priority Class Name", spec["priorityClassName"])
    if spec.get("runtimeClassName"):
        w.kv(0, "Runtime Class Name", spec["runtimeClassName"])
    if spec.get("serviceAccountName"):
        w.kv(0, "Service Account", spec["serviceAccountName"])
    node = spec.get("nodeName")
    w.kv(0, "Node", f"{node}/{status.get('hostIP', '')}" if node else "<none>")
    if status.get("startTime"):
        w.kv(0, "Start Time", rfc1123z(status["startTime"]))
    w.map(0, "Labels", m.get("labels"))
    w.annotations(0, "Annotations", m.get("annotations"))
    phase = status.get("phase", "")
    if m.get("deletionTimestamp") and phase not in ("Failed", "Succeeded"):
        w.write(0, f"Status:\tTerminating (lasts {human_age(m['deletionTimestamp'])})")
        w.write(0, f"Termination Grace Period:\t{m.get('deletionGracePeriodSeconds', 0)}s")
    else:
        w.write(0, f"Status:\t{phase}")
    for key in ("reason", "message"):
        if status.get(key):
            w.kv(0, key.capitalize(), status[key])
    w.write(0, f"IP:\t{status.get('podIP', '')}")
    ips = [i.get("ip", "") for i in status.get("podIPs") or []]
    w.write(0, "IPs:" + ("" if ips else "\t<none>"))
    for ip in ips:
        w.write(1, f"IP:\t{ip}")
    _controlled_by(w, pod)
    if spec.get("initContainers"):
        _containers(w, "Init Containers", spec["initContainers"],
                    status.get("initContainerStatuses"))  # fmt: skip
    _containers(w, "Containers", spec.get("containers") or [], status.get("containerStatuses"))
    if status.get("conditions"):
        w.write(0, "Conditions:")
        w.write(1, "Type\tStatus")
        for c in status["conditions"]:
            w.write(1, f"{c.get('type', '')} \t{c.get('status', '')} ")
    _volumes(w, spec.get("volumes") or [])
    w.kv(0, "QoS Class", _qos(pod))
    w.map(0, "Node-Selectors", spec.get("nodeSelector"))
    _tolerations(w, "Tolerations", spec.get("tolerations"))


def _template(w: Writer, template: Obj) -> None:
    """kubectl's ``DescribePodTemplate``."""
    spec, m = template.get("spec") or {}, _meta(template)
    w.write(0, "Pod Template:")
    w.map(1, "Labels", m.get("labels"))
    if m.get("annotations"):
        w.annotations(1, "Annotations", m["annotations"])
    if spec.get("serviceAccountName"):
        w.kv(1, "Service Account", spec["serviceAccountName"])
    if spec.get("initContainers"):
        _containers(w, "Init Containers", spec["initContainers"], None, "  ")
    _containers(w, "Containers", spec.get("containers") or [], None, "  ")
    _volumes(w, spec.get("volumes") or [], "  ")
    if spec.get("priorityClassName"):
        w.kv(1, "Priority Class Name", spec["priorityClassName"])
    w.map(1, "Node-Selectors", spec.get("nodeSelector"))
    _tolerations(w, "  Tolerations", spec.get("tolerations"))


def _replica_sets(session: Session, dep: Obj) -> list[Obj]:
    sel = format_label_selector((dep.get("spec") or {}).get("selector"))
    rt = kinds.lookup("replicasets")
    rss = api.list_objects(session.client, rt, _meta(dep).get("namespace"), label_selector=sel)
    uid = _meta(dep).get("uid")
    return [
        rs
        for rs in rss
        if any(
            r.get("uid") == uid and r.get("controller")
            for r in _meta(rs).get("ownerReferences") or []
        )
    ]


def describe_deployment(session: Session, rt: ResourceType, dep: Obj, w: Writer) -> None:
    spec, status = dep.get("spec") or {}, dep.get("status") or {}
    _header(w, dep)
    w.kv(0, "Selector", format_label_selector(spec.get("selector")))
    w.kv(
        0,
        "Replicas",
        f"{spec.get('replicas', 1)} desired | {status.get('updatedReplicas', 0)} "
        f"updated | {status.get('replicas', 0)} total | {status.get('availableReplicas', 0)} "
        f"available | {status.get('unavailableReplicas', 0)} unavailable",
    )
    strategy = spec.get("strategy") or {}
    w.kv(0, "StrategyType", strategy.get("type", "RollingUpdate"))
    w.write(0, f"MinReadySeconds:\t{spec.get('minReadySeconds', 0)}")
    ru = strategy.get("rollingUpdate")
    if ru is not None:
        w.kv(
            0,
            "RollingUpdateStrategy",
            f"{ru.get('maxUnavailable', '25%')} max unavailable, "
            f"{ru.get('maxSurge', '25%')} max surge",
        )
    _template(w, spec.get("template") or {})
    _conditions(w, status.get("conditions"), ("Reason",))
    rss = _replica_sets(session, dep)
    template_labels = _meta(spec.get("template") or {}).get("labels") or {}
    new = [
        rs
        for rs in rss
        if (_meta(rs).get("labels") or {}).get("pod-template-hash")
        == template_labels.get("pod-template-hash")
        or _same_template(rs, spec)
    ]
    old = [rs for rs in rss if rs not in new and ((rs.get("spec") or {}).get("replicas") or 0)]

    def names(items: list[Obj]) -> str:
        return (
            ", ".join(
                f"{_meta(r)['name']} ({(r.get('status') or {}).get('replicas', 0)}/"
                f"{(r.get('spec') or {}).get('replicas', 0)} replicas created)"
                for r in items
            )
            or "<none>"
        )

    if rss:  # kubectl leaves both lines out before the first replica set exists
        w.kv(0, "OldReplicaSets", names(old))
        w.kv(0, "NewReplicaSet", names(new[:1]))


def _same_template(rs: Obj, dep_spec: Obj) -> bool:
    def strip(t: Obj) -> Obj:
        meta = dict(_meta(t))
        labels = {k: v for k, v in (meta.get("labels") or {}).items() if k != "pod-template-hash"}
        return {"labels": labels, "spec": t.get("spec")}

    return strip((rs.get("spec") or {}).get("template") or {}) == strip(
        dep_spec.get("template") or {}
    )


def describe_replicaset(session: Session, rt: ResourceType, rs: Obj, w: Writer) -> None:
    spec, status = rs.get("spec") or {}, rs.get("status") or {}
    m = _meta(rs)
    w.kv(0, "Name", m.get("name"))
    w.kv(0, "Namespace", m.get("namespace"))
    w.kv(0, "Selector", format_label_selector(spec.get("selector")))
    w.map(0, "Labels", m.get("labels"))
    w.annotations(0, "Annotations", m.get("annotations"))
    _controlled_by(w, rs)
    w.kv(0, "Replicas", f"{status.get('replicas', 0)} current / {spec.get('replicas', 1)} desired")
    w.kv(0, "Pods Status", _pods_status(session, rs))
    _template(w, spec.get("template") or {})
    _conditions(w, status.get("conditions"), ("Reason",))


def _pods_status(session: Session, owner: Obj) -> str:
    """``N Running / N Waiting / N Succeeded / N Failed`` over the pods ``owner`` controls."""
    m = _meta(owner)
    sel = format_label_selector((owner.get("spec") or {}).get("selector"))
    pods = api.list_objects(
        session.client, kinds.lookup("pods"), m.get("namespace"), label_selector=sel
    )
    phases = [
        (p.get("status") or {}).get("phase")
        for p in pods
        if any(r.get("controller") and r.get("uid") == m.get("uid")
               for r in _meta(p).get("ownerReferences") or [])
    ]  # fmt: skip
    counts = [phases.count(phase) for phase in ("Running", "Pending", "Succeeded", "Failed")]
    return "{} Running / {} Waiting / {} Succeeded / {} Failed".format(*counts)


def describe_node(session: Session, rt: ResourceType, node: Obj, w: Writer) -> None:
    spec, status, m = node.get("spec") or {}, node.get("status") or {}, _meta(node)
    name = m.get("name", "")
    w.kv(0, "Name", name)
    roles = sorted(
        k.split("/", 1)[1]
        for k in (m.get("labels") or {})
        if k.startswith("node-role.kubernetes.io/")
    )
    w.kv(0, "Roles", ",".join(roles) or "<none>")
    w.map(0, "Labels", m.get("labels"))
    w.annotations(0, "Annotations", m.get("annotations"))
    w.kv(0, "CreationTimestamp", rfc1123z(m.get("creationTimestamp")))
    taints = [
        f"{t['key']}{'=' + t['value'] if t.get('value') else ''}:{t.get('effect', '')}"
        for t in spec.get("taints") or []
    ]
    w.kv(0, "Taints", taints[0] if taints else "<none>")
    for taint in taints[1:]:
        w.write(0, f"\t{taint}")
    w.kv(0, "Unschedulable", "true" if spec.get("unschedulable") else "false")
    _lease(session, w, name)
    conditions = status.get("conditions") or []
    if conditions:
        head = ["Type", "Status", "LastHeartbeatTime", "LastTransitionTime", "Reason", "Message"]
        w.write(0, "Conditions:")
        w.table(1, [head, ["-" * len(h) for h in head]])
        for c in conditions:
            w.write(
                1,
                f"{c.get('type', '')} \t{c.get('status', '')} \t"
                f"{rfc1123z(c.get('lastHeartbeatTime'))} \t"
                f"{rfc1123z(c.get('lastTransitionTime'))} \t{c.get('reason', '')} \t"
                f"{c.get('message', '')}",
            )
    w.write(0, "Addresses:")
    for a in status.get("addresses") or []:
        w.write(1, f"{a.get('type', '')}:\t{a.get('address', '')}")
    for part in ("capacity", "allocatable"):
        if status.get(part):
            w.write(0, f"{part.capitalize()}:")
            for k, v in sorted(status[part].items()):
                w.write(1, f"{k}:\t{_canonical(str(v))}")
    info = status.get("nodeInfo") or {}
    w.write(0, "System Info:")
    for key, title in (
        ("machineID", "Machine ID"), ("systemUUID", "System UUID"), ("bootID", "Boot ID"),
        ("kernelVersion", "Kernel Version"), ("osImage", "OS Image"),
        ("operatingSystem", "Operating System"), ("architecture", "Architecture"),
        ("containerRuntimeVersion", "Container Runtime Version"),
        ("kubeletVersion", "Kubelet Version"),
    ):  # fmt: skip
        w.write(1, f"{title}:\t{info.get(key, '')}")
    w.write(1, f"Kube-Proxy Version:\t{info.get('kubeProxyVersion', '')}")
    if spec.get("podCIDR"):
        w.write(0, f"PodCIDR:\t{spec['podCIDR']}")
    if spec.get("podCIDRs"):
        w.write(0, f"PodCIDRs:\t{','.join(spec['podCIDRs'])}")
    if spec.get("providerID"):
        w.write(0, f"ProviderID:\t{spec['providerID']}")
    pods = [
        p
        for p in api.list_objects(
            session.client, kinds.lookup("pods"), None, field_selector=f"spec.nodeName={name}"
        )
        if (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
    ]
    _node_pods(w, status.get("allocatable") or {}, pods)


def _lease(session: Session, w: Writer, name: str) -> None:
    try:
        lease = session.client.get(kinds.lookup("leases"), name, "kube-node-lease")
    except errors.NotFound:
        w.write(0, f'Lease:\tFailed to get lease: leases.coordination.k8s.io "{name}" not found')
        return
    except (errors.ApiError, KeyError):
        return
    spec = lease.get("spec") or {}
    w.write(0, "Lease:")
    w.write(1, f"HolderIdentity:\t{spec.get('holderIdentity') or '<unset>'}")
    w.write(1, f"AcquireTime:\t{rfc1123z(spec.get('acquireTime'))}")
    w.write(1, f"RenewTime:\t{rfc1123z(spec.get('renewTime'))}")


def _node_pods(w: Writer, allocatable: Obj, pods: list[Obj]) -> None:
    """``Non-terminated Pods`` and ``Allocated resources`` as kubectl prints them."""
    cpu_cap = cpu_millis(str(allocatable.get("cpu", "0")))
    mem_cap = to_bytes(str(allocatable.get("memory", "0")))

    def pct(value: float, cap: float) -> str:
        return f"{int(value * 100 / cap) if cap else 0}%"

    totals = {"cpu": [0.0, 0.0], "memory": [0.0, 0.0]}
    w.write(0, f"Non-terminated Pods:\t({len(pods)} in total)")
    head = ["Namespace", "Name", "", "CPU Requests", "CPU Limits", "Memory Requests",
            "Memory Limits", "Age"]  # fmt: skip
    w.table(1, [head, ["-" * len(h) for h in head]])
    for p in pods:
        req: dict[str, float] = {"cpu": 0.0, "memory": 0.0}
        lim: dict[str, float] = {"cpu": 0.0, "memory": 0.0}
        texts: dict[str, list[str]] = {"cpu": ["0", "0"], "memory": ["0", "0"]}
        for c in (p.get("spec") or {}).get("containers") or []:
            res = c.get("resources") or {}
            for i, (part, acc) in enumerate((("requests", req), ("limits", lim))):
                vals = res.get(part) or {}
                if "cpu" in vals:
                    acc["cpu"] += cpu_millis(str(vals["cpu"]))
                    texts["cpu"][i] = format_cpu(int(acc["cpu"]))
                if "memory" in vals:
                    acc["memory"] += to_bytes(str(vals["memory"]))
                    texts["memory"][i] = str(vals["memory"])
        for key in totals:
            totals[key][0] += req[key]
            totals[key][1] += lim[key]
        m = _meta(p)
        w.write(
            1,
            f"{m.get('namespace', '')}\t{m.get('name', '')}\t\t"
            f"{texts['cpu'][0]} ({pct(req['cpu'], cpu_cap)})\t"
            f"{texts['cpu'][1]} ({pct(lim['cpu'], cpu_cap)})\t"
            f"{texts['memory'][0]} ({pct(req['memory'], mem_cap)})\t"
            f"{texts['memory'][1]} ({pct(lim['memory'], mem_cap)})\t"
            f"{human_age(m.get('creationTimestamp'))}",
        )
    w.write(0, "Allocated resources:")
    w.write(1, "(Total limits may be over 100 percent, i.e., overcommitted.)")
    w.table(1, [["Resource", "Requests", "Limits"], ["--------", "--------", "------"]])
    for key, cap in (("cpu", cpu_cap), ("memory", mem_cap)):
        r, lm = totals[key]
        rt = format_cpu(int(r)) if key == "cpu" else format_bytes(int(r))
        lt = format_cpu(int(lm)) if key == "cpu" else format_bytes(int(lm))
        w.write(1, f"{key}\t{rt} ({pct(r, cap)})\t{lt} ({pct(lm, cap)})")
    w.write(1, "ephemeral-storage\t0 (0%)\t0 (0%)")


def _canonical(quantity: str) -> str:
    """A binary-suffixed quantity in its canonical form (``104857600Ki`` → ``100Gi``), as Go's
    ``Quantity.String()`` prints it; others as they are."""
    if quantity[-2:-1] in ("K", "M", "G", "T", "P", "E") and quantity.endswith("i"):
        try:
            return format_bytes(to_bytes(quantity))
        except ValueError:
            return quantity
    return quantity


def describe_service(session: Session, rt: ResourceType, svc: Obj, w: Writer) -> None:
    spec, m = svc.get("spec") or {}, _meta(svc)
    w.kv(0, "Name", m.get("name"))
    w.kv(0, "Namespace", m.get("namespace"))
    w.map(0, "Labels", m.get("labels"))
    w.annotations(0, "Annotations", m.get("annotations"))
    sel = spec.get("selector") or {}
    w.kv(0, "Selector", ",".join(f"{k}={v}" for k, v in sorted(sel.items())))
    w.kv(0, "Type", spec.get("type", "ClusterIP"))
    if spec.get("ipFamilyPolicy"):
        w.kv(0, "IP Family Policy", spec["ipFamilyPolicy"])
    w.kv(0, "IP Families", ",".join(spec.get("ipFamilies") or []) or "<none>")
    w.write(0, f"IP:\t{spec.get('clusterIP', '')}")
    if spec.get("clusterIPs"):
        w.write(0, f"IPs:\t{','.join(spec['clusterIPs'])}")
    if spec.get("externalIPs"):
        w.write(0, f"External IPs:\t{','.join(spec['externalIPs'])}")
    ingress = ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    if ingress:
        addrs = [i.get("ip") or i.get("hostname") or "" for i in ingress]
        w.write(0, f"LoadBalancer Ingress:\t{', '.join(addrs)}")
    endpoints = _endpoints(session, svc)
    for p in spec.get("ports") or []:
        name = p.get("name") or "<unset>"
        proto = p.get("protocol", "TCP")
        w.write(0, f"Port:\t{name}\t{p.get('port')}/{proto}")
        w.write(0, f"TargetPort:\t{p.get('targetPort', p.get('port'))}/{proto}")
        if p.get("nodePort"):
            w.write(0, f"NodePort:\t{name}\t{p['nodePort']}/{proto}")
        w.write(0, f"Endpoints:\t{endpoints.get(p.get('name') or '', '')}")
    w.kv(0, "Session Affinity", spec.get("sessionAffinity", "None"))
    if spec.get("externalTrafficPolicy"):
        w.kv(0, "External Traffic Policy", spec["externalTrafficPolicy"])
    if spec.get("internalTrafficPolicy"):
        w.kv(0, "Internal Traffic Policy", spec["internalTrafficPolicy"])


def _endpoints(session: Session, svc: Obj) -> dict[str, str]:
    """Per service port name, its endpoints as kubectl's ``formatEndpointSlices`` lists them:
    ``ip:port`` of ready endpoints, the first three then ``+ N more...``; ``""`` for a port
    without any, ``<none>`` for every port when the service has no EndpointSlice."""
    m = _meta(svc)
    try:
        slices = api.list_objects(
            session.client,
            kinds.lookup("endpointslices"),
            m.get("namespace"),
            label_selector=f"kubernetes.io/service-name={m.get('name')}",
        )
    except (errors.ApiError, KeyError):
        slices = []
    found: dict[str, list[str]] = {}
    for sl in slices:
        for port in sl.get("ports") or []:
            for ep in sl.get("endpoints") or []:
                if (ep.get("conditions") or {}).get("ready") is False:
                    continue
                for addr in ep.get("addresses") or []:
                    found.setdefault(port.get("name") or "", []).append(f"{addr}:{port['port']}")
    if not slices:
        return {p.get("name") or "": "<none>" for p in (svc.get("spec") or {}).get("ports") or []}
    out = {}
    for name, addrs in found.items():
        text = ",".join(addrs[:3])
        out[name] = text + (f" + {len(addrs) - 3} more..." if len(addrs) > 3 else "")
    return out


def describe_hpa(session: Session, rt: ResourceType, hpa: Obj, w: Writer) -> None:
    spec, status, m = hpa.get("spec") or {}, hpa.get("status") or {}, _meta(hpa)
    w.kv(0, "Name", m.get("name"))
    w.kv(0, "Namespace", m.get("namespace"))
    w.map(0, "Labels", m.get("labels"))
    w.annotations(0, "Annotations", m.get("annotations"))
    w.kv(0, "CreationTimestamp", rfc1123z(m.get("creationTimestamp")))
    ref = spec.get("scaleTargetRef") or {}
    w.kv(0, "Reference", f"{ref.get('kind')}/{ref.get('name')}")
    w.kv(0, "Metrics", "( current / target )")
    current = {(m.get("resource") or {}).get("name"): m for m in status.get("currentMetrics") or []}
    for metric in spec.get("metrics") or []:
        res = metric.get("resource") or {}
        target = res.get("target") or {}
        cur = ((current.get(res.get("name")) or {}).get("resource") or {}).get("current") or {}
        if target.get("averageUtilization") is not None:
            have = cur.get("averageUtilization")
            w.kv(
                1,
                f"resource {res.get('name')} on pods  (as a percentage of request)",
                f"{'<unknown>' if have is None else str(have) + '%'} / "
                f"{target['averageUtilization']}%",
            )
        else:
            w.kv(
                1,
                f"resource {res.get('name')} on pods",
                f"{cur.get('averageValue', '<unknown>')} / {target.get('averageValue')}",
            )
    if spec.get("targetCPUUtilizationPercentage") is not None:
        have = status.get("currentCPUUtilizationPercentage")
        w.kv(
            1,
            "resource cpu on pods  (as a percentage of request)",
            f"{'<unknown>' if have is None else str(have) + '%'} / "
            f"{spec['targetCPUUtilizationPercentage']}%",
        )
    w.kv(0, "Min replicas", spec.get("minReplicas", 1))
    w.kv(0, "Max replicas", spec.get("maxReplicas"))
    w.kv(
        0,
        f"{ref.get('kind')} pods",
        f"{status.get('currentReplicas', 0)} current / {status.get('desiredReplicas', 0)} desired",
    )
    _conditions(w, status.get("conditions"), ("Reason", "Message"), pad="")


def _generic(session: Session, rt: ResourceType, obj: Obj, w: Writer) -> None:
    _header(w, obj, rt.namespaced)
    w.kv(0, "API Version", obj.get("apiVersion", rt.api_version))
    w.kv(0, "Kind", obj.get("kind", rt.kind))

    def walk(level: int, value: Any) -> None:
        for key, v in value.items():
            k = key[0].upper() + key[1:] if level == 0 else key
            if isinstance(v, dict):
                w.line(level, f"{k}:")
                walk(level + 1, v)
            elif isinstance(v, list) and v and isinstance(v[0], dict):
                w.line(level, f"{k}:")
                for item in v:
                    walk(level + 1, item)
            else:
                w.kv(level, f"{k}", v if not isinstance(v, list) else ", ".join(map(str, v)))

    walk(0, {k: v for k, v in obj.items() if k not in ("apiVersion", "kind", "metadata")})


def _events(session: Session, obj: Obj, w: Writer) -> None:
    m = _meta(obj)
    parts = [f"involvedObject.name={m.get('name')}", f"involvedObject.uid={m.get('uid')}"]
    if m.get("namespace"):
        parts.insert(1, f"involvedObject.namespace={m['namespace']}")
    try:
        events = api.list_objects(
            session.client,
            kinds.lookup("events"),
            m.get("namespace"),
            field_selector=",".join(parts),
        )
    except errors.ApiError:
        events = []
    if not events:
        w.kv(0, "Events", "<none>")
        return
    events.sort(key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or "")
    w.flush()  # as kubectl: the table does not align with the lines above it
    w.write(0, "Events:")
    w.table(1, [["Type", "Reason", "Age", "From", "Message"], ["----", "------", "----", "----",
                "-------"]])  # fmt: skip
    for e in events:
        first = human_age(e.get("eventTime") or e.get("firstTimestamp"))
        series = e.get("series") or {}
        if series:
            last, count = series.get("lastObservedTime"), series.get("count")
        else:
            last, count = e.get("lastTimestamp"), e.get("count") or 1
        age = f"{human_age(last)} (x{count} over {first})" if series or count > 1 else first
        source = (e.get("source") or {}).get("component") or e.get("reportingComponent", "")
        cells = [e.get("type", ""), e.get("reason", ""), age, source, e.get("message", "").strip()]
        w.table(1, [cells])


DESCRIBERS: dict[str, Callable[[Session, ResourceType, Obj, Writer], None]] = {
    "Pod": describe_pod,
    "Deployment": describe_deployment,
    "ReplicaSet": describe_replicaset,
    "Node": describe_node,
    "Service": describe_service,
    "HorizontalPodAutoscaler": describe_hpa,
}

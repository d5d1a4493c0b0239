"""``tug describe``: a readable summary of pods, deployments, replica sets, nodes, services and
HPAs (other kinds get a generic dump), followed by their Events, found with the field selector
``involvedObject.name/namespace/uid`` as kubectl finds them."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from cli import api
from cli.config import Session
from cli.errors import CliError
from cli.targets import parse_targets
from machinery import errors, kinds
from machinery.kinds import ResourceType
from machinery.printers import format_label_selector, human_age, pod_status

Obj = dict[str, Any]
HIDDEN = frozenset({"kubectl.kubernetes.io/last-applied-configuration"})


class Writer:
    """Lines of ``key: value`` at indent levels; values in a run of same-level lines align."""

    def __init__(self) -> None:
        self.lines: list[tuple[int, str, str | None]] = []

    def kv(self, level: int, key: str, value: Any = None) -> None:
        text = "<none>" if value in (None, "", {}, []) else str(value)
        self.lines.append((level, key + ":", text))

    def line(self, level: int, text: str) -> None:
        self.lines.append((level, text, None))

    def map(self, level: int, key: str, values: dict[str, Any] | None) -> None:
        items = sorted((k, v) for k, v in (values or {}).items() if k not in HIDDEN)
        if not items:
            self.kv(level, key, "<none>")
            return
        first, *rest = items
        self.kv(level, key, f"{first[0]}={first[1]}")
        for k, v in rest:
            self.lines.append((level, "", f"{k}={v}"))

    def table(self, level: int, rows: list[list[str]]) -> None:
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        for r in rows:
            cells = [c.ljust(widths[i]) for i, c in enumerate(r[:-1])] + r[-1:]
            self.line(level, "  ".join(cells).rstrip())

    def render(self) -> str:
        out: list[str] = []
        i = 0
        while i < len(self.lines):
            level = self.lines[i][0]
            j = i
            while (
                j < len(self.lines) and self.lines[j][0] == level and self.lines[j][2] is not None
            ):
                j += 1
            if j == i:
                out.append("  " * level + self.lines[i][1])
                i += 1
                continue
            width = max(len(k) for _, k, _ in self.lines[i:j]) + 2
            for lv, k, v in self.lines[i:j]:
                out.append(("  " * lv + k.ljust(width) + (v or "")).rstrip())
            i = j
        return "\n".join(out) + "\n"


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
    w.kv(0, "CreationTimestamp", m.get("creationTimestamp"))
    w.map(0, "Labels", m.get("labels"))
    w.map(0, "Annotations", m.get("annotations"))


def _controlled_by(w: Writer, obj: Obj) -> None:
    for ref in _meta(obj).get("ownerReferences") or []:
        if ref.get("controller"):
            w.kv(0, "Controlled By", f"{ref.get('kind')}/{ref.get('name')}")


def _containers(w: Writer, level: int, spec: Obj, statuses: list[Obj] | None) -> None:
    by_name = {s.get("name"): s for s in statuses or []}
    for c in spec.get("containers") or []:
        w.line(level, f"{c['name']}:")
        st = by_name.get(c["name"])
        if st and st.get("containerID"):
            w.kv(level + 1, "Container ID", st.get("containerID"))
        w.kv(level + 1, "Image", c.get("image"))
        ports = ", ".join(
            f"{p.get('containerPort')}/{p.get('protocol', 'TCP')}" for p in c.get("ports") or []
        )
        w.kv(level + 1, "Port", ports)
        if c.get("command"):
            w.kv(level + 1, "Command", " ".join(c["command"]))
        if c.get("args"):
            w.kv(level + 1, "Args", " ".join(c["args"]))
        if st is not None:
            state = st.get("state") or {}
            for name in ("running", "waiting", "terminated"):
                if name in state:
                    w.kv(level + 1, "State", name.capitalize())
                    detail = state[name] or {}
                    if detail.get("reason"):
                        w.kv(level + 2, "Reason", detail["reason"])
                    if detail.get("exitCode") is not None:
                        w.kv(level + 2, "Exit Code", detail["exitCode"])
                    if detail.get("startedAt"):
                        w.kv(level + 2, "Started", detail["startedAt"])
            w.kv(level + 1, "Ready", "True" if st.get("ready") else "False")
            w.kv(level + 1, "Restart Count", st.get("restartCount", 0))
        res = c.get("resources") or {}
        for part in ("limits", "requests"):
            if res.get(part):
                w.line(level + 1, f"{part.capitalize()}:")
                for k, v in sorted(res[part].items()):
                    w.kv(level + 2, k, v)
        env = c.get("env") or []
        if env:
            w.line(level + 1, "Environment:")
            for e in env:
                w.kv(level + 2, e["name"], e.get("value", "<set from a source>"))
        else:
            w.kv(level + 1, "Environment", "<none>")


def _conditions(w: Writer, conditions: list[Obj] | None, extra: tuple[str, ...] = ()) -> None:
    if not conditions:
        return
    w.line(0, "Conditions:")
    head = ["Type", "Status", *extra]
    rows = [head, ["-" * len(h) for h in head]]
    for c in conditions:
        rows.append(
            [
                c.get("type", ""),
                c.get("status", ""),
                *[str(c.get(e[0].lower() + e[1:], "")) for e in extra],
            ]
        )
    w.table(1, rows)


def describe_pod(session: Session, rt: ResourceType, pod: Obj, w: Writer) -> None:
    spec, status, m = pod.get("spec") or {}, pod.get("status") or {}, _meta(pod)
    w.kv(0, "Name", m.get("name"))
    w.kv(0, "Namespace", m.get("namespace"))
    w.kv(0, "Priority", spec.get("priority", 0))
    w.kv(0, "Service Account", spec.get("serviceAccountName", "default"))
    node = spec.get("nodeName")
    w.kv(0, "Node", f"{node}/{status.get('hostIP')}" if node and status.get("hostIP") else node)
    w.kv(0, "Start Time", status.get("startTime"))
    w.map(0, "Labels", m.get("labels"))
    w.map(0, "Annotations", m.get("annotations"))
    w.kv(0, "Status", pod_status(pod)[1] if m.get("deletionTimestamp") else status.get("phase"))
    w.kv(0, "IP", status.get("podIP", ""))
    _controlled_by(w, pod)
    w.line(0, "Containers:")
    _containers(w, 1, spec, status.get("containerStatuses"))
    _conditions(w, status.get("conditions"))
    w.kv(0, "QoS Class", status.get("qosClass"))
    w.map(0, "Node-Selectors", spec.get("nodeSelector"))


def _template(w: Writer, template: Obj) -> None:
    w.line(0, "Pod Template:")
    w.map(1, "Labels", _meta(template).get("labels"))
    w.line(1, "Containers:")
    _containers(w, 2, template.get("spec") or {}, None)


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
    w.kv(0, "MinReadySeconds", spec.get("minReadySeconds", 0))
    ru = strategy.get("rollingUpdate") or {}
    if strategy.get("type", "RollingUpdate") == "RollingUpdate":
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
    w.map(0, "Annotations", m.get("annotations"))
    _controlled_by(w, rs)
    w.kv(0, "Replicas", f"{status.get('replicas', 0)} current / {spec.get('replicas', 1)} desired")
    w.kv(
        0,
        "Pods Status",
        f"{status.get('readyReplicas', 0)} Running / 0 Waiting / 0 Succeeded / 0 Failed",
    )
    _template(w, spec.get("template") or {})
    _conditions(w, status.get("conditions"), ("Reason",))


def describe_node(session: Session, rt: ResourceType, node: Obj, w: Writer) -> None:
    spec, status, m = node.get("spec") or {}, node.get("status") or {}, _meta(node)
    w.kv(0, "Name", m.get("name"))
    roles = sorted(
        k.split("/", 1)[1]
        for k in (m.get("labels") or {})
        if k.startswith("node-role.kubernetes.io/")
    )
    w.kv(0, "Roles", ",".join(roles) or "<none>")
    w.map(0, "Labels", m.get("labels"))
    w.map(0, "Annotations", m.get("annotations"))
    w.kv(0, "CreationTimestamp", m.get("creationTimestamp"))
    taints = [
        f"{t['key']}{'=' + t['value'] if t.get('value') else ''}:{t.get('effect', '')}"
        for t in spec.get("taints") or []
    ]
    w.kv(0, "Taints", ", ".join(taints) or "<none>")
    w.kv(0, "Unschedulable", "true" if spec.get("unschedulable") else "false")
    _conditions(w, status.get("conditions"), ("Reason", "Message"))
    w.line(0, "Addresses:")
    for a in status.get("addresses") or []:
        w.kv(1, a.get("type", ""), a.get("address"))
    for part in ("capacity", "allocatable"):
        w.line(0, f"{part.capitalize()}:")
        for k, v in sorted((status.get(part) or {}).items()):
            w.kv(1, k, v)
    w.kv(0, "PodCIDR", spec.get("podCIDR"))
    pods = api.list_objects(
        session.client, kinds.lookup("pods"), None, field_selector=f"spec.nodeName={m.get('name')}"
    )
    w.line(0, f"Non-terminated Pods:  ({len(pods)} in total)")
    if pods:
        rows = [["Namespace", "Name", "Age"], ["---------", "----", "---"]]
        rows += [
            [
                _meta(p).get("namespace", ""),
                _meta(p).get("name", ""),
                human_age(_meta(p).get("creationTimestamp")),
            ]
            for p in pods
        ]
        w.table(1, rows)


def describe_service(session: Session, rt: ResourceType, svc: Obj, w: Writer) -> None:
    spec, m = svc.get("spec") or {}, _meta(svc)
    w.kv(0, "Name", m.get("name"))
    w.kv(0, "Namespace", m.get("namespace"))
    w.map(0, "Labels", m.get("labels"))
    w.map(0, "Annotations", m.get("annotations"))
    sel = spec.get("selector") or {}
    w.kv(0, "Selector", ",".join(f"{k}={v}" for k, v in sorted(sel.items())))
    w.kv(0, "Type", spec.get("type", "ClusterIP"))
    w.kv(0, "IP", spec.get("clusterIP"))
    for p in spec.get("ports") or []:
        name = p.get("name") or "<unset>"
        w.kv(0, "Port", f"{name}  {p.get('port')}/{p.get('protocol', 'TCP')}")
        w.kv(0, "TargetPort", f"{p.get('targetPort', p.get('port'))}/{p.get('protocol', 'TCP')}")
        if p.get("nodePort"):
            w.kv(0, "NodePort", f"{name}  {p['nodePort']}/{p.get('protocol', 'TCP')}")
        w.kv(0, "Endpoints", _endpoints(session, svc))
    w.kv(0, "Session Affinity", spec.get("sessionAffinity", "None"))


def _endpoints(session: Session, svc: Obj) -> str:
    try:
        ep = session.client.get(
            kinds.lookup("endpoints"), _meta(svc)["name"], _meta(svc).get("namespace")
        )
    except errors.ApiError:
        return "<none>"
    addrs = [
        f"{a.get('ip')}:{p.get('port')}"
        for s in ep.get("subsets") or []
        for a in s.get("addresses") or []
        for p in s.get("ports") or [{}]
    ]
    return ",".join(addrs) or "<none>"


def describe_hpa(session: Session, rt: ResourceType, hpa: Obj, w: Writer) -> None:
    spec, status = hpa.get("spec") or {}, hpa.get("status") or {}
    _header(w, hpa)
    ref = spec.get("scaleTargetRef") or {}
    w.kv(0, "Reference", f"{ref.get('kind')}/{ref.get('name')}")
    w.line(0, "Metrics:                                               ( current / target )")
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
    _conditions(w, status.get("conditions"), ("Reason", "Message"))


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
    w.line(0, "Events:")
    rows = [
        ["Type", "Reason", "Age", "From", "Message"],
        ["----", "------", "----", "----", "-------"],
    ]
    for e in events:
        first = e.get("firstTimestamp") or e.get("eventTime")
        last = e.get("lastTimestamp") or first
        age = human_age(last)
        if (e.get("count") or 1) > 1:
            age = f"{age} (x{e['count']} over {human_age(first)})"
        source = (e.get("source") or {}).get("component") or e.get("reportingComponent", "")
        rows.append(
            [e.get("type", ""), e.get("reason", ""), age, source, e.get("message", "").strip()]
        )
    w.table(1, rows)


DESCRIBERS: dict[str, Callable[[Session, ResourceType, Obj, Writer], None]] = {
    "Pod": describe_pod,
    "Deployment": describe_deployment,
    "ReplicaSet": describe_replicaset,
    "Node": describe_node,
    "Service": describe_service,
    "HorizontalPodAutoscaler": describe_hpa,
}

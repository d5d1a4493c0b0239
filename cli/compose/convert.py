"""Compose document → Kubernetes manifests (pure: no file or network access).

Per service: a Deployment (``replicas`` from ``deploy.replicas``/``scale``), or a bare Pod when
``restart`` is ``no``/``on-failure`` (Deployments only restart Always); a Service named after
the service when it has ``ports`` (NodePort; a published port inside 30000–32767 becomes the
``nodePort``) or ``expose`` (ClusterIP), so ``http://<service>:<port>`` resolves through
cluster DNS as on a compose network; ``links``/network ``aliases`` add Services named after the
alias. ``depends_on`` becomes an init container that waits until each dependency's Service
accepts connections (readiness gates Endpoints, so ``service_healthy`` holds too);
``healthcheck`` becomes a readinessProbe; named volumes become PersistentVolumeClaims without a
``storageClassName``, which the cluster's default StorageClass binds (``local-path`` under
``tug up``: a directory on the node), an ``external`` volume names an existing claim and
creates none; bind mounts become hostPath, anonymous volumes and ``tmpfs`` emptyDir.
``environment`` entries without a value were resolved by :mod:`.load`; one still ``None`` is
unset and left out, as compose does.

Keys tug cannot honour are listed in ``warnings`` by path; keys that are not compose keys raise
:class:`ComposeError` (one line naming the key). Every object carries the project label, which
``tug compose down`` selects on.
"""

from __future__ import annotations

import posixpath
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from machinery.selectors import validate_label_key, validate_label_value

from . import keys

PROJECT_LABEL = "tugboat.io/compose-project"
SERVICE_LABEL = "tugboat.io/compose-service"
WAIT_IMAGE = "docker.io/library/busybox:1.35"
NODE_PORTS = range(30000, 32768)
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(us|ms|s|m|h)")
_PULL = {"always": "Always", "never": "Never", "missing": "IfNotPresent"}
_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


class ComposeError(ValueError):
    """A compose file tug cannot convert; one line."""


@dataclass
class Conversion:
    manifests: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def services_of(doc: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The services of a v2/v3 file (``services:``) or of a v1 file (top-level keys)."""
    if "services" in doc or "version" in doc:
        return dict(doc.get("services") or {})
    return {k: v for k, v in doc.items() if not k.startswith("x-")}


def dns_name(name: str) -> str:
    """A DNS-1123 label from a compose name (``my_app`` → ``my-app``)."""
    out = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")
    if not out:
        raise ComposeError(f"{name!r} cannot be turned into a Kubernetes name")
    return out[:63]


def convert(
    doc: Mapping[str, Any],
    project: str,
    *,
    images: Mapping[str, str] | None = None,
    base_dir: str = ".",
) -> Conversion:
    """Convert ``doc`` (env files already merged into ``environment``).

    ``images`` maps a service with ``build`` to the image built for it (default
    ``localhost/<project>/<service>:latest``); ``base_dir`` anchors relative bind mounts.
    """
    if not isinstance(doc, Mapping):
        raise ComposeError("the compose file is not a mapping")
    out = Conversion()
    legacy = "services" not in doc and "version" not in doc
    if not legacy:
        _check(doc, "", keys.TOP_LEVEL, keys.TOP_LEVEL_UNSUPPORTED, out, allow_x=True)
    services = services_of(doc)
    if not services:
        raise ComposeError("no services defined")
    ctx = _Context(project, dict(images or {}), base_dir, _top_volumes(doc, out))
    for name, svc in services.items():
        if not isinstance(svc, Mapping):
            raise ComposeError(f"services.{name} must be a mapping")
        _check(svc, f"services.{name}.", keys.SERVICE, keys.SERVICE_UNSUPPORTED, out)
    ctx.ports = {name: _ports(name, svc, out) for name, svc in services.items()}
    _networks(doc, services, out)
    ctx.link_aliases = _link_aliases(services)
    for name, svc in services.items():
        _service(ctx, name, svc, out)
    for vol in sorted(ctx.claims):
        if not _external(ctx.volumes[vol]):
            out.manifests.append(_claim(ctx, vol))
    return out


def _top_volumes(doc: Mapping[str, Any], out: Conversion) -> dict[str, dict[str, Any]]:
    volumes: dict[str, dict[str, Any]] = {}
    for vol, spec in (doc.get("volumes") or {}).items():
        spec = dict(spec or {})
        _check(spec, f"volumes.{vol}.", keys.VOLUME, keys.VOLUME_UNSUPPORTED, out)
        volumes[str(vol)] = spec
    return volumes


def _external(spec: Mapping[str, Any]) -> bool:
    external = spec.get("external")
    return bool(external) and external not in ("false", "False")


def _claim_name(vol: str, spec: Mapping[str, Any]) -> str:
    """The claim a named volume mounts: its ``name`` (``external.name`` in v3.0-3.3), else
    the volume's key."""
    external = spec.get("external")
    legacy = external.get("name") if isinstance(external, Mapping) else None
    return dns_name(str(spec.get("name") or legacy or vol))


# ---------------------------------------------------------------- checks and small parsers


def _check(
    obj: Mapping[str, Any],
    prefix: str,
    known: frozenset[str],
    unsupported: frozenset[str],
    out: Conversion,
    allow_x: bool = True,
) -> None:
    for key in obj:
        if key in known or (allow_x and str(key).startswith("x-")):
            continue
        if key in unsupported:
            out.warnings.append(f"{prefix}{key}: not supported by tug compose, ignored")
        else:
            raise ComposeError(f"unknown compose key {prefix}{key}")


def seconds(value: Any, where: str) -> int:
    """A compose duration (``1m30s``, ``10s``, ``500ms``) in whole seconds (at least 1)."""
    if isinstance(value, int | float):
        return max(1, round(value))
    text = str(value).strip()
    matches = list(_DURATION.finditer(text))
    if not matches or "".join(m.group(0) for m in matches) != text:
        raise ComposeError(f"{where}: invalid duration {value!r}")
    total = sum(float(m.group(1)) * _UNITS[m.group(2)] for m in matches)
    return max(1, round(total))


def memory(value: Any, where: str) -> str:
    """Docker byte sizes (``512m``, ``1g``, ``100k``, bytes; base 1024) as a quantity."""
    m = re.fullmatch(r"(\d+)\s*([bkmg]?)b?", str(value).strip().lower())
    if not m:
        raise ComposeError(f"{where}: invalid memory size {value!r}")
    number, unit = m.groups()
    return number + {"": "", "b": "", "k": "Ki", "m": "Mi", "g": "Gi"}[unit]


def words(value: Any) -> list[str]:
    """``command``/``entrypoint``: a list as is, a string split the way compose splits it."""
    if isinstance(value, list):
        return [str(v) for v in value]
    return shlex.split(str(value))


def _env(svc: Mapping[str, Any], where: str) -> list[dict[str, str]]:
    raw = svc.get("environment") or {}
    pairs: list[tuple[str, Any]] = []
    if isinstance(raw, Mapping):
        pairs = list(raw.items())
    elif isinstance(raw, list):
        for item in raw:
            key, eq, value = str(item).partition("=")
            pairs.append((key, value if eq else None))
    else:
        raise ComposeError(f"{where}environment must be a list or a mapping")
    env = []
    for key, value in pairs:
        if value is None:
            continue  # ``- KEY`` with KEY unset where tug compose runs: compose leaves it out
        text = str(value).lower() if isinstance(value, bool) else value
        env.append({"name": str(key), "value": str(text)})
    return env


@dataclass(frozen=True)
class _Port:
    container: int
    published: int | None
    protocol: str
    public: bool = True  # from ``ports`` (reachable from the host), not ``expose``
    name: str | None = None  # the Service port's name (long form ``name``)
    app_protocol: str | None = None


def _long_port(item: Mapping[str, Any], where: str, out: Conversion) -> _Port:
    _check(item, f"{where}.", keys.PORT, frozenset(), out)
    if "host_ip" in item:
        out.warnings.append(f"{where}.host_ip: {item['host_ip']} ignored (NodePorts bind all)")
    if str(item.get("mode", "ingress")) != "ingress":
        out.warnings.append(
            f"{where}.mode: {item['mode']!r} not supported; the port is published through the "
            "Service on every node (as ingress)"
        )
    if "target" not in item:
        raise ComposeError(f"{where}: target is required")
    try:
        target = int(item["target"])
        published = int(item["published"]) if item.get("published") else None
    except ValueError:
        raise ComposeError(f"{where}: invalid port in {dict(item)!r}") from None
    return _Port(
        target,
        published,
        str(item.get("protocol", "tcp")).upper(),
        name=dns_name(str(item["name"])) if item.get("name") else None,
        app_protocol=str(item["app_protocol"]) if item.get("app_protocol") else None,
    )


def _ports(name: str, svc: Mapping[str, Any], out: Conversion) -> list[_Port]:
    where = f"services.{name}.ports"
    ports: list[_Port] = []
    for i, item in enumerate(svc.get("ports") or []):
        if isinstance(item, Mapping):
            ports.append(_long_port(item, f"{where}[{i}]", out))
            continue
        text, _, proto = str(item).partition("/")
        parts = text.split(":")
        if len(parts) == 3:  # ip:published:container
            out.warnings.append(f"{where}: host IP {parts[0]} ignored (NodePorts bind all)")
            parts = parts[1:]
        if "-" in text:
            raise ComposeError(f"{where}: port ranges ({item}) are not supported")
        try:
            container = int(parts[-1])
            published = int(parts[0]) if len(parts) == 2 and parts[0] else None
        except ValueError:
            raise ComposeError(f"{where}: invalid port {item!r}") from None
        ports.append(_Port(container, published, (proto or "tcp").upper()))
    for item in svc.get("expose") or []:
        text, _, proto = str(item).partition("/")
        ports.append(_Port(int(text), None, (proto or "tcp").upper(), public=False))
    return ports


def _networks(doc: Mapping[str, Any], services: Mapping[str, Any], out: Conversion) -> None:
    used: set[str] = set()
    for name, svc in services.items():
        nets = svc.get("networks") or []
        used.update(nets if isinstance(nets, list) else list(nets))
        if isinstance(nets, Mapping):
            for net, spec in nets.items():
                where = f"services.{name}.networks.{net}."
                _check(
                    spec or {}, where, keys.SERVICE_NETWORK, keys.SERVICE_NETWORK_UNSUPPORTED, out
                )
    if len(used) > 1:
        out.warnings.append(
            f"networks: {', '.join(sorted(used))} are not isolated from each other: tugboat "
            "stores NetworkPolicy objects but does not enforce them, so services on separate "
            "networks can reach each other"
        )
    for net, spec in (doc.get("networks") or {}).items():
        extra = sorted(set(spec or {}) - {"name", "external"})
        if extra:
            out.warnings.append(f"networks.{net}: {', '.join(extra)} not supported, ignored")


# ---------------------------------------------------------------- objects


@dataclass
class _Context:
    project: str
    images: dict[str, str]
    base_dir: str
    volumes: dict[str, Any]
    ports: dict[str, list[_Port]] = field(default_factory=dict)
    claims: set[str] = field(default_factory=set)
    link_aliases: dict[str, set[str]] = field(default_factory=dict)

    def labels(self, service: str | None = None) -> dict[str, str]:
        labels = {PROJECT_LABEL: self.project}
        if service is not None:
            labels[SERVICE_LABEL] = dns_name(service)
        return labels

    def meta(self, name: str, service: str | None = None) -> dict[str, Any]:
        return {"name": dns_name(name), "labels": self.labels(service)}


def _service(ctx: _Context, name: str, svc: Mapping[str, Any], out: Conversion) -> None:
    where = f"services.{name}."
    for key in ("hostname", "container_name"):
        if key in svc:
            out.warnings.append(
                f"{where}{key}: pods are named by Kubernetes; use the service name {name!r}"
            )
    deploy = svc.get("deploy") or {}
    _check(deploy, f"{where}deploy.", keys.DEPLOY, keys.DEPLOY_UNSUPPORTED, out)
    container = _container(ctx, name, svc, out)
    pod_spec: dict[str, Any] = {"containers": [container]}
    volumes = _volumes(ctx, name, svc, container, out)
    if volumes:
        pod_spec["volumes"] = volumes
    init = _wait_for(ctx, name, svc, out)
    if init:
        pod_spec["initContainers"] = init
    if "stop_grace_period" in svc:
        grace = seconds(svc["stop_grace_period"], f"{where}stop_grace_period")
        pod_spec["terminationGracePeriodSeconds"] = grace
    restart = _restart_policy(svc, deploy, where, out)
    annotations = {str(k): str(v) for k, v in _pairs(svc.get("labels")).items()}
    template_meta: dict[str, Any] = {"labels": ctx.labels(name)}
    if annotations:
        template_meta["annotations"] = annotations
    workload_meta = ctx.meta(name, name)
    workload_meta["labels"] = {**workload_meta["labels"], **_deploy_labels(deploy, where, out)}
    if restart == "Always":
        replicas = deploy.get("replicas", svc.get("scale", 1))
        out.manifests.append(
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": workload_meta,
                "spec": {
                    "replicas": int(replicas),
                    "selector": {"matchLabels": ctx.labels(name)},
                    "template": {"metadata": template_meta, "spec": pod_spec},
                },
            }
        )
    else:
        pod_spec["restartPolicy"] = restart
        meta = workload_meta
        if annotations:
            meta["annotations"] = annotations
        out.manifests.append(
            {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": pod_spec}
        )
    ports = ctx.ports[name]
    if ports:
        out.manifests.append(_k8s_service(ctx, name, name, ports, out))
    for alias in sorted({*_aliases(name, svc), *ctx.link_aliases.get(name, set())}):
        if ports:
            out.manifests.append(_k8s_service(ctx, alias, name, ports, out, cluster_ip=True))
        else:
            out.warnings.append(f"{where}: alias {alias!r} needs ports or expose to resolve")


def _pairs(value: Any) -> dict[str, Any]:
    if isinstance(value, Mapping):
        return dict(value)
    out = {}
    for item in value or []:
        k, _, v = str(item).partition("=")
        out[k] = v
    return out


def _deploy_labels(deploy: Mapping[str, Any], where: str, out: Conversion) -> dict[str, str]:
    """``deploy.labels`` (labels of the service, not its containers) → the workload's labels;
    one that is not a valid Kubernetes label is left out with a warning."""
    labels: dict[str, str] = {}
    for key, value in _pairs(deploy.get("labels")).items():
        key, text = str(key), "" if value is None else str(value)
        why = validate_label_key(key) or validate_label_value(text)
        if why is None and not key.startswith("tugboat.io/"):
            labels[key] = text
        else:
            reason = why or "the tugboat.io/ prefix is tug's own"
            out.warnings.append(f"{where}deploy.labels.{key}: invalid label ({reason}), ignored")
    return labels


_CONDITIONS = {"none": "Never", "on-failure": "OnFailure", "any": "Always"}


def _restart_policy(
    svc: Mapping[str, Any], deploy: Mapping[str, Any], where: str, out: Conversion
) -> str:
    """The pod's restartPolicy. Retry counts, delays and windows have no Kubernetes field (the
    node agent restarts with its own back-off): each one given is a warning."""
    policy = deploy.get("restart_policy")
    if policy is not None:
        at = f"{where}deploy.restart_policy."
        _check(policy, at, keys.RESTART_POLICY, keys.RESTART_POLICY_UNSUPPORTED, out)
        if "restart" in svc:
            out.warnings.append(f"{where}restart: overridden by deploy.restart_policy, ignored")
        condition = str(policy.get("condition", "any"))
        if condition not in _CONDITIONS:
            out.warnings.append(
                f"{at}condition: unknown value {condition!r}, restart policy Always used"
            )
        return _CONDITIONS.get(condition, "Always")
    restart = str(svc.get("restart", "always"))
    if restart in ("always", "unless-stopped"):
        return "Always"
    if restart in ("no", "False", "false"):
        return "Never"
    if restart == "on-failure":
        return "OnFailure"
    if restart.startswith("on-failure:") and restart.partition(":")[2].isdigit():
        out.warnings.append(
            f"{where}restart: the retry limit of {restart} is not supported, ignored "
            "(OnFailure restarts without a limit)"
        )
        return "OnFailure"
    raise ComposeError(f"{where}restart: invalid value {restart!r}")


def _container(ctx: _Context, name: str, svc: Mapping[str, Any], out: Conversion) -> dict[str, Any]:
    where = f"services.{name}."
    c: dict[str, Any] = {"name": dns_name(name)}
    if "build" in svc:
        build = svc["build"]
        if isinstance(build, Mapping):
            _check(build, f"{where}build.", keys.BUILD, keys.BUILD_UNSUPPORTED, out)
        c["image"] = (
            ctx.images.get(name)
            or svc.get("image")
            or (f"localhost/{ctx.project}/{dns_name(name)}:latest")
        )
        c["imagePullPolicy"] = "IfNotPresent"
    elif "image" in svc:
        c["image"] = str(svc["image"])
    else:
        raise ComposeError(f"{where[:-1]}: needs image or build")
    if "pull_policy" in svc:
        c["imagePullPolicy"] = _PULL.get(str(svc["pull_policy"]), "IfNotPresent")
    if "entrypoint" in svc:
        c["command"] = words(svc["entrypoint"])
    if "command" in svc:
        c["args"] = words(svc["command"])
    if "working_dir" in svc:
        c["workingDir"] = str(svc["working_dir"])
    env = _env(svc, where)
    if env:
        c["env"] = env
    ports = [p for p in ctx.ports[name]]
    if ports:
        seen: dict[tuple[int, str], None] = {}
        for p in ports:
            seen.setdefault((p.container, p.protocol), None)
        c["ports"] = [{"containerPort": port, "protocol": proto} for port, proto in seen]
    resources = _resources(svc, where, out)
    if resources:
        c["resources"] = resources
    probe = _probe(svc, where, out)
    if probe:
        c["readinessProbe"] = probe
    security: dict[str, Any] = {}
    if "user" in svc:
        user, _, group = str(svc["user"]).partition(":")
        if user.isdigit():
            security["runAsUser"] = int(user)
            if group.isdigit():
                security["runAsGroup"] = int(group)
        else:
            out.warnings.append(f"{where}user: {svc['user']!r} is not numeric; image user kept")
    if svc.get("privileged"):
        security["privileged"] = True
    if security:
        c["securityContext"] = security
    for key in ("stdin_open", "tty"):
        if svc.get(key):
            c["stdin" if key == "stdin_open" else "tty"] = True
    return c


def _resources(svc: Mapping[str, Any], where: str, out: Conversion) -> dict[str, Any]:
    res = ((svc.get("deploy") or {}).get("resources")) or {}
    at = f"{where}deploy.resources."
    _check(res, at, keys.RESOURCES, frozenset(), out)
    limits = dict(res.get("limits") or {})
    requests = dict(res.get("reservations") or {})
    _check(limits, f"{at}limits.", keys.LIMITS, keys.LIMITS_UNSUPPORTED, out)
    _check(requests, f"{at}reservations.", keys.RESERVATIONS, keys.RESERVATIONS_UNSUPPORTED, out)
    for spec, unsupported in (
        (limits, keys.LIMITS_UNSUPPORTED),
        (requests, keys.RESERVATIONS_UNSUPPORTED),
    ):
        for key in unsupported:
            spec.pop(key, None)
    if "mem_limit" in svc:
        limits["memory"] = svc["mem_limit"]
    if "cpus" in svc:
        limits["cpus"] = svc["cpus"]
    if "mem_reservation" in svc:
        requests["memory"] = svc["mem_reservation"]
    result: dict[str, Any] = {}
    for key, compose_key, spec in (
        ("limits", "limits", limits),
        ("requests", "reservations", requests),
    ):
        q: dict[str, str] = {}
        for field_name, value in spec.items():
            if field_name == "cpus":
                q["cpu"] = str(value)
            else:  # memory: _check let nothing else through
                q["memory"] = memory(value, f"{at}{compose_key}.memory")
        if q:
            result[key] = q
    return result


def _probe(svc: Mapping[str, Any], where: str, out: Conversion) -> dict[str, Any] | None:
    hc = svc.get("healthcheck")
    if not hc:
        return None
    _check(hc, f"{where}healthcheck.", keys.HEALTHCHECK, keys.HEALTHCHECK_UNSUPPORTED, out)
    test = hc.get("test")
    if hc.get("disable") or test in (["NONE"], "NONE") or test is None:
        return None
    if isinstance(test, str):
        command = ["/bin/sh", "-c", test]
    elif test and test[0] == "CMD":
        command = [str(t) for t in test[1:]]
    elif test and test[0] == "CMD-SHELL":
        command = ["/bin/sh", "-c", " ".join(str(t) for t in test[1:])]
    else:
        raise ComposeError(f"{where}healthcheck.test must start with CMD, CMD-SHELL or NONE")
    probe: dict[str, Any] = {"exec": {"command": command}}
    for key, target in (
        ("interval", "periodSeconds"),
        ("timeout", "timeoutSeconds"),
        ("start_period", "initialDelaySeconds"),
    ):
        if key in hc:
            probe[target] = seconds(hc[key], f"{where}healthcheck.{key}")
    if "retries" in hc:
        probe["failureThreshold"] = int(hc["retries"])
    return probe


def _volumes(
    ctx: _Context, name: str, svc: Mapping[str, Any], c: dict[str, Any], out: Conversion
) -> list[dict[str, Any]]:
    where = f"services.{name}.volumes"
    volumes: list[dict[str, Any]] = []
    mounts: list[dict[str, Any]] = []
    for i, item in enumerate(svc.get("volumes") or []):
        options: dict[str, Any] = {}
        if isinstance(item, Mapping):
            kind = str(item.get("type", "volume"))
            if "target" not in item:
                raise ComposeError(f"{where}[{i}]: target is required")
            source, target = item.get("source"), str(item["target"])
            read_only = bool(item.get("read_only"))
            options = _mount_options(item, kind, f"{where}[{i}]", out)
        else:
            parts = str(item).split(":")
            mode = parts[2] if len(parts) > 2 else ""
            flags = [f for f in mode.split(",") if f]
            read_only = "ro" in flags
            for flag in flags:
                if flag not in ("ro", "rw"):
                    out.warnings.append(f"{where}[{i}]: mode {flag!r} not supported, ignored")
            source, target = (parts[0], parts[1]) if len(parts) > 1 else (None, parts[0])
            bind = source is not None and source.startswith(("/", ".", "~"))
            kind = "bind" if bind else "volume"
        vol_name = f"{dns_name(name)}-{i}"
        if kind == "bind":
            path = str(source)
            if path.startswith("~"):
                raise ComposeError(f"{where}: ~ in {path!r} is not supported; use a full path")
            path = posixpath.normpath(posixpath.join(ctx.base_dir, path))
            volumes.append({"name": vol_name, "hostPath": {"path": path}})
        elif kind == "tmpfs":
            empty_dir = {"medium": "Memory"}
            if "size" in options:
                empty_dir["sizeLimit"] = options["size"]
            volumes.append({"name": vol_name, "emptyDir": empty_dir})
        elif kind == "volume" and source:
            if source not in ctx.volumes:
                raise ComposeError(f"{where}: volume {source!r} is not declared under volumes")
            vol_name = dns_name(str(source))
            ctx.claims.add(str(source))
            claim = _claim_name(str(source), ctx.volumes[str(source)])
            volumes.append({"name": vol_name, "persistentVolumeClaim": {"claimName": claim}})
        elif kind == "volume":
            volumes.append({"name": vol_name, "emptyDir": {}})
        else:
            raise ComposeError(f"{where}: volume type {kind!r} is not supported")
        mount: dict[str, Any] = {"name": vol_name, "mountPath": target}
        if read_only:
            mount["readOnly"] = True
        if "subpath" in options:
            mount["subPath"] = str(options["subpath"])
        mounts.append(mount)
    if mounts:
        c["volumeMounts"] = mounts
    return volumes


_MOUNT_OPTIONS = {
    "volume": (keys.MOUNT_VOLUME, keys.MOUNT_VOLUME_UNSUPPORTED),
    "bind": (keys.MOUNT_BIND, keys.MOUNT_BIND_UNSUPPORTED),
    "tmpfs": (keys.MOUNT_TMPFS, keys.MOUNT_TMPFS_UNSUPPORTED),
}


def _mount_options(item: Mapping[str, Any], kind: str, at: str, out: Conversion) -> dict[str, Any]:
    """The honoured options of a long-form mount: ``volume.subpath`` (→ ``subPath``) and
    ``tmpfs.size`` (→ ``sizeLimit``); the others are warnings."""
    _check(item, f"{at}.", keys.MOUNT, keys.MOUNT_UNSUPPORTED, out)
    honoured: dict[str, Any] = {}
    for block, (known, unsupported) in _MOUNT_OPTIONS.items():
        if block not in item:
            continue
        if block != kind:
            out.warnings.append(f"{at}.{block}: options for type {block}, ignored for {kind}")
            continue
        opts = item[block] or {}
        _check(opts, f"{at}.{block}.", known, unsupported, out)
        if "subpath" in opts:
            honoured["subpath"] = opts["subpath"]
        if "size" in opts:
            honoured["size"] = memory(opts["size"], f"{at}.tmpfs.size")
    return honoured


def _claim(ctx: _Context, vol: str) -> dict[str, Any]:
    """A claim of the default StorageClass; ``labels`` of the volume become its annotations
    (compose labels are free text), ``tugboat.io/size`` its request (default 1Gi)."""
    spec = ctx.volumes.get(vol) or {}
    labels = {str(k): str(v) for k, v in _pairs(spec.get("labels")).items()}
    size = labels.pop("tugboat.io/size", "1Gi")
    meta = ctx.meta(_claim_name(vol, spec))
    if labels:
        meta["annotations"] = labels
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": meta,
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}},
    }


def _aliases(name: str, svc: Mapping[str, Any]) -> list[str]:
    aliases: list[str] = []
    nets = svc.get("networks")
    if isinstance(nets, Mapping):
        for spec in nets.values():
            aliases += [str(a) for a in (spec or {}).get("aliases") or []]
    return [dns_name(a) for a in aliases if dns_name(a) != dns_name(name)]


def _link_aliases(services: Mapping[str, Any]) -> dict[str, set[str]]:
    """target service → aliases other services gave it with ``links: [target:alias]``."""
    out: dict[str, set[str]] = {}
    for svc in services.values():
        for link in svc.get("links") or []:
            target, _, alias = str(link).partition(":")
            if alias and dns_name(alias) != dns_name(target):
                out.setdefault(target, set()).add(dns_name(alias))
    return out


_DEPENDS_CONDITIONS = ("service_started", "service_healthy", "service_completed_successfully")


def _wait_for(
    ctx: _Context, name: str, svc: Mapping[str, Any], out: Conversion
) -> list[dict[str, Any]]:
    deps = svc.get("depends_on") or []
    items = list(deps.items()) if isinstance(deps, Mapping) else [(d, {}) for d in deps]
    links = [str(link).partition(":")[0] for link in svc.get("links") or []]
    items += [(t, {}) for t in links if t not in dict(items)]
    init = []
    for dep, spec in items:
        spec = spec or {}
        at = f"services.{name}.depends_on.{dep}"
        _check(spec, f"{at}.", keys.DEPENDS_ON, keys.DEPENDS_ON_UNSUPPORTED, out)
        condition = spec.get("condition", "service_started")
        if condition not in _DEPENDS_CONDITIONS:
            raise ComposeError(f"{at}.condition: invalid value {condition!r}")
        if dep not in ctx.ports:
            if spec.get("required", True) in (False, "false"):
                out.warnings.append(f"{at}: not a service of this file, optional: no wait")
                continue
            raise ComposeError(f"services.{name}.depends_on: unknown service {dep!r}")
        if condition == "service_completed_successfully":
            out.warnings.append(
                f"services.{name}.depends_on.{dep}: service_completed_successfully is not "
                "enforced (start order only)"
            )
            continue
        ports = ctx.ports[dep]
        if not ports:
            out.warnings.append(
                f"services.{name}.depends_on: {dep} has no ports, start order not enforced"
            )
            continue
        host, port = dns_name(dep), ports[0].container
        # busybox nc has no -z: connect with stdin closed (exit 0 once connected)
        init.append(
            {
                "name": f"wait-for-{host}",
                "image": WAIT_IMAGE,
                "imagePullPolicy": "IfNotPresent",
                "command": [
                    "sh", "-c",
                    f"until nc -w 2 {host} {port} </dev/null; do "
                    f"echo waiting for {host}:{port}; sleep 1; done",
                ],
            }
        )  # fmt: skip
    return init


def _k8s_service(
    ctx: _Context,
    svc_name: str,
    service: str,
    ports: list[_Port],
    out: Conversion,
    cluster_ip: bool = False,
) -> dict[str, Any]:
    node_port = not cluster_ip and any(p.public for p in ports)
    spec_ports: list[dict[str, Any]] = []
    seen: set[tuple[int, str]] = set()
    for p in ports:
        key = (p.published or p.container, p.protocol)
        if key in seen:
            continue
        seen.add(key)
        entry: dict[str, Any] = {
            "name": p.name or f"{p.protocol.lower()}-{p.published or p.container}",
            "port": p.container,
            "targetPort": p.container,
            "protocol": p.protocol,
        }
        if p.app_protocol:
            entry["appProtocol"] = p.app_protocol
        if node_port and p.published:
            if p.published in NODE_PORTS:
                entry["nodePort"] = p.published
            else:
                out.warnings.append(
                    f"services.{service}.ports: published port {p.published} is outside the "
                    "NodePort range 30000-32767; the Service gets an allocated nodePort"
                )
        spec_ports.append(entry)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": ctx.meta(svc_name, service),
        "spec": {
            "type": "NodePort" if node_port else "ClusterIP",
            "selector": ctx.labels(service),
            "ports": spec_ports,
        },
    }

"""A container's environment, the way the Kubernetes kubelet builds it.

:func:`fetch_sources` reads every ConfigMap and Secret a pod refers to (env, envFrom, volumes)
from the API server; :func:`environment` is pure and builds the environment from them.

Contracts (``kubelet_pods.go`` ``makeEnvironmentVariables``):

- ``envFrom`` first, in order (``prefix`` prepended; keys that are not valid variable names are
  skipped and reported), then ``env`` in order; a later name overrides an earlier one.
- ``env[].value`` is ``$(VAR)``-expanded against the variables defined so far (``$$`` escapes,
  unknown references stay as written); ``valueFrom`` values are never expanded.
- ``valueFrom``: ``fieldRef`` (``metadata.name/namespace/uid``, ``metadata.labels['k']``,
  ``metadata.annotations['k']``, ``spec.nodeName``, ``spec.serviceAccountName``,
  ``status.podIP(s)``, ``status.hostIP(s)``), ``resourceFieldRef`` (``limits|requests.cpu|
  memory|ephemeral-storage`` with ``divisor``; an unset limit is the node's capacity; rounded
  up), ``configMapKeyRef`` and ``secretKeyRef`` (``optional: true`` tolerates a missing
  object or key by leaving the variable out).
- Services (``enableServiceLinks``, default true): the Docker-links-style variables of every
  Service of the pod's namespace with a ClusterIP (``NAME_SERVICE_HOST``, ``NAME_SERVICE_PORT``,
  ``NAME_SERVICE_PORT_PORTNAME``, ``NAME_PORT``, ``NAME_PORT_80_TCP`` and its ``_PROTO``/``_PORT``/
  ``_ADDR``) come first, so ``env`` overrides them and ``$(VAR)`` can use them; the
  ``default/kubernetes`` Service's are always there (``KUBERNETES_SERVICE_HOST`` is what
  in-cluster clients look for) unless the namespace has its own ``kubernetes`` Service.
- The Services come from :class:`ServiceCache` (one watch per agent, like the kubelet's
  Service informer) once it has synced, else from the API server; as in Kubernetes, a Service
  created after the pod started is not in its environment.
- A missing required object or key raises :class:`ConfigError` with Kubernetes' message; the
  worker reports it as ``CreateContainerConfigError`` and retries with back-off.
"""

from __future__ import annotations

import base64
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from machinery import errors
from machinery.informer import Informer
from machinery.kinds import lookup
from machinery.quantity import cpu_millis, to_bytes

from .satoken import Token, TokenKey

Obj = dict[str, Any]
CONFIGMAPS, SECRETS, SERVICES = lookup("configmaps"), lookup("secrets"), lookup("services")
MASTER_SERVICE = ("default", "kubernetes")
_VAR = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")
_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")


class ConfigError(ValueError):
    """The pod refers to configuration that does not exist (CreateContainerConfigError)."""


@dataclass
class Sources:
    """ConfigMaps and Secrets by name (``None``: not found), already decoded to bytes, and the
    Services whose variables the pod's containers get."""

    configmaps: dict[str, dict[str, bytes] | None] = field(default_factory=dict)
    secrets: dict[str, dict[str, bytes] | None] = field(default_factory=dict)
    services: list[Obj] = field(default_factory=list)
    #: ServiceAccount tokens of projected volumes (:class:`kubelet.satoken.TokenManager`)
    tokens: dict[TokenKey, Token | str] = field(default_factory=dict)

    def get(self, kind: str, name: str) -> dict[str, bytes] | None:
        return (self.configmaps if kind == "configmap" else self.secrets).get(name)


def configmap_data(obj: Obj) -> dict[str, bytes]:
    out = {k: str(v).encode() for k, v in (obj.get("data") or {}).items()}
    out.update({k: base64.b64decode(v) for k, v in (obj.get("binaryData") or {}).items()})
    return out


def secret_data(obj: Obj) -> dict[str, bytes]:
    out = {k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()}
    out.update({k: str(v).encode() for k, v in (obj.get("stringData") or {}).items()})
    return out


def _volume_refs(volume: Obj) -> Iterable[tuple[str, str]]:
    if volume.get("configMap"):
        yield "configmap", volume["configMap"].get("name", "")
    if volume.get("secret"):
        yield "secret", volume["secret"].get("secretName", "")
    for source in (volume.get("projected") or {}).get("sources") or []:
        if source.get("configMap"):
            yield "configmap", source["configMap"].get("name", "")
        if source.get("secret"):
            yield "secret", source["secret"].get("name", "")


def references(pod: Obj) -> set[tuple[str, str]]:
    """Every (``configmap``|``secret``, name) the pod's containers and volumes refer to."""
    spec = pod.get("spec") or {}
    refs: set[tuple[str, str]] = set()
    for c in list(spec.get("initContainers") or []) + list(spec.get("containers") or []):
        for src in c.get("envFrom") or []:
            if src.get("configMapRef"):
                refs.add(("configmap", src["configMapRef"].get("name", "")))
            if src.get("secretRef"):
                refs.add(("secret", src["secretRef"].get("name", "")))
        for item in c.get("env") or []:
            value_from = item.get("valueFrom") or {}
            if value_from.get("configMapKeyRef"):
                refs.add(("configmap", value_from["configMapKeyRef"].get("name", "")))
            if value_from.get("secretKeyRef"):
                refs.add(("secret", value_from["secretKeyRef"].get("name", "")))
    for volume in spec.get("volumes") or []:
        refs.update(_volume_refs(volume))
    return {(kind, name) for kind, name in refs if name}


class ServiceCache:
    """Every Service, kept current by one list+watch (the kubelet's Service informer), so a pod
    start asks the API server nothing for its Service variables. ``await run()`` in a task."""

    def __init__(self, client: Any) -> None:
        self.informer = Informer(client, SERVICES)

    @property
    def synced(self) -> bool:
        return self.informer.synced

    async def run(self) -> None:
        await self.informer.run()

    def namespace(self, namespace: str) -> list[Obj]:
        return self.informer.store.list(namespace)

    def get(self, namespace: str, name: str) -> Obj | None:
        return self.informer.store.get_by(namespace, name)


async def fetch_services(client: Any, pod: Obj, cache: ServiceCache | None = None) -> list[Obj]:
    """The Services whose variables the pod gets: its namespace's (when service links are on)
    and ``default/kubernetes``; read from ``cache`` once it is synced, else from the API."""
    namespace = (pod.get("metadata") or {}).get("namespace") or "default"
    links = (pod.get("spec") or {}).get("enableServiceLinks", True)
    if cache is not None and cache.synced:
        out = list(cache.namespace(namespace)) if links else []
        master = cache.get(*MASTER_SERVICE)
        if (namespace != MASTER_SERVICE[0] or not out) and master is not None:
            out.append(master)
        return out
    out = []
    if links:
        out = list((await client.list(SERVICES, namespace)).get("items") or [])
    if namespace != MASTER_SERVICE[0] or not out:
        try:
            out.append(await client.get(SERVICES, MASTER_SERVICE[1], MASTER_SERVICE[0]))
        except errors.NotFound:
            pass
    return out


async def fetch_sources(client: Any, pod: Obj, services: ServiceCache | None = None) -> Sources:
    """GET every ConfigMap and Secret the pod refers to (missing ones are ``None``) and the
    Services of :func:`fetch_services` (from ``services`` when given and synced)."""
    namespace = (pod.get("metadata") or {}).get("namespace") or "default"
    sources = Sources(services=await fetch_services(client, pod, services))
    for kind, name in sorted(references(pod)):
        rt = CONFIGMAPS if kind == "configmap" else SECRETS
        try:
            obj = await client.get(rt, name, namespace)
        except errors.NotFound:
            data = None
        else:
            data = configmap_data(obj) if kind == "configmap" else secret_data(obj)
        (sources.configmaps if kind == "configmap" else sources.secrets)[name] = data
    return sources


# ---------------------------------------------------------------------------------------------
# pure parts


def expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes ``$(VAR)`` expansion: known names are replaced, unknown ones kept, ``$$``
    becomes ``$``."""

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group(1)
        return env[name] if name in env else m.group(0)

    return _VAR.sub(sub, text)


def field_ref(pod: Obj, path: str, pod_ip: str, host_ip: str) -> str:
    """The value of a downward-API ``fieldPath``; ``ValueError`` for an unsupported one."""
    m, s = pod.get("metadata") or {}, pod.get("spec") or {}
    simple = {
        "metadata.name": m.get("name"),
        "metadata.namespace": m.get("namespace"),
        "metadata.uid": m.get("uid"),
        "spec.nodeName": s.get("nodeName"),
        "spec.serviceAccountName": s.get("serviceAccountName") or "default",
        **dict.fromkeys(POD_IP_FIELDS, pod_ip),
        "status.hostIP": host_ip,
        "status.hostIPs": host_ip,
    }
    if path in simple:
        return str(simple[path] or "")
    if path in ("metadata.labels", "metadata.annotations"):
        items = m.get(path.split(".")[1]) or {}
        return "\n".join(f"{k}={_quote(str(v))}" for k, v in sorted(items.items()))
    found = re.fullmatch(r"metadata\.(labels|annotations)\['(.+)'\]", path)
    if found:
        return str((m.get(found.group(1)) or {}).get(found.group(2), ""))
    raise ValueError(f"unsupported fieldRef {path!r}")


POD_IP_FIELDS = frozenset({"status.podIP", "status.podIPs"})


def uses_pod_ip(c: Obj) -> bool:
    """Whether container ``c``'s environment names the pod's IP (a downward-API ``fieldRef``)."""
    return any(
        ((e.get("valueFrom") or {}).get("fieldRef") or {}).get("fieldPath") in POD_IP_FIELDS
        for e in c.get("env") or []
    )


def _quote(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def resource_ref(
    pod: Obj, default_container: str, ref: Obj, cpu_capacity_millis: int, memory_capacity: int
) -> str:
    """A ``resourceFieldRef`` value: the container's request or limit divided by ``divisor``,
    rounded up; an unset limit is the node's capacity, an unset request 0 (cpu: limit)."""
    name = ref.get("containerName") or default_container
    spec = pod.get("spec") or {}
    containers = list(spec.get("containers") or []) + list(spec.get("initContainers") or [])
    c = next((x for x in containers if x.get("name") == name), None)
    if c is None:
        raise ValueError(f"resourceFieldRef: container {name!r} not found")
    resource = str(ref.get("resource") or "")
    kind, _, what = resource.partition(".")
    res = c.get("resources") or {}
    limits, requests = res.get("limits") or {}, res.get("requests") or {}
    value = (limits if kind == "limits" else requests).get(what)
    if kind == "requests" and value is None:
        value = limits.get(what)
    divisor = ref.get("divisor") or "1"
    if what == "cpu":
        millis = cpu_millis(value) if value is not None else 0
        if kind == "limits" and value is None:
            millis = cpu_capacity_millis
        return str(max(1 if kind == "limits" else 0, math.ceil(millis / cpu_millis(divisor))))
    if what in ("memory", "ephemeral-storage"):
        amount = to_bytes(value) if value is not None else 0
        if kind == "limits" and value is None and what == "memory":
            amount = memory_capacity
        return str(math.ceil(amount / to_bytes(divisor)))
    raise ValueError(f"unsupported resourceFieldRef {resource!r}")


@dataclass(frozen=True)
class EnvContext:
    """What :func:`environment` needs besides the pod and the container."""

    pod_ip: str = ""
    host_ip: str = ""
    cpu_capacity_millis: int = 1000
    memory_capacity: int = 0


def _key_ref(
    sources: Sources, kind: str, ref: Obj, namespace: str
) -> tuple[str | None, str | None]:
    """(value, error) of a configMapKeyRef/secretKeyRef."""
    name, key = ref.get("name", ""), ref.get("key", "")
    data = sources.get(kind, name)
    label = "ConfigMap" if kind == "configmap" else "Secret"
    if data is None:
        return None, f'{kind} "{name}" not found'
    if key not in data:
        return None, f"couldn't find key {key} in {label} {namespace}/{name}"
    return data[key].decode(errors="replace"), None


def _env_name(name: str) -> str:
    return name.upper().replace("-", "_")


def service_variables(services: Iterable[Obj], namespace: str) -> dict[str, str]:
    """The Docker-links-style variables of ``services`` as the pod in ``namespace`` sees them:
    its namespace's Services with a ClusterIP, and ``default/kubernetes`` unless the namespace
    has a Service of that name (Kubernetes' ``getServiceEnvVarMap``)."""
    chosen: dict[str, Obj] = {}
    for svc in services:
        m, spec = svc.get("metadata") or {}, svc.get("spec") or {}
        ip = spec.get("clusterIP")
        if not ip or ip == "None":
            continue
        name, ns = str(m.get("name", "")), m.get("namespace") or "default"
        if ns == namespace or ((ns, name) == MASTER_SERVICE and name not in chosen):
            chosen[name] = svc
    env: dict[str, str] = {}
    for name in sorted(chosen):
        spec = chosen[name].get("spec") or {}
        ip, ports = spec["clusterIP"], spec.get("ports") or []
        prefix = _env_name(name)
        env[f"{prefix}_SERVICE_HOST"] = ip
        if not ports:
            continue
        env[f"{prefix}_SERVICE_PORT"] = str(ports[0]["port"])
        for port in ports:
            if port.get("name"):
                env[f"{prefix}_SERVICE_PORT_{_env_name(port['name'])}"] = str(port["port"])
        first = ports[0]
        env[f"{prefix}_PORT"] = f"{(first.get('protocol') or 'TCP').lower()}://{ip}:{first['port']}"
        for port in ports:
            proto = port.get("protocol") or "TCP"
            base = f"{prefix}_PORT_{port['port']}_{proto.upper()}"
            env[base] = f"{proto.lower()}://{ip}:{port['port']}"
            env[f"{base}_PROTO"] = proto.lower()
            env[f"{base}_PORT"] = str(port["port"])
            env[f"{base}_ADDR"] = ip
    return env


def environment(
    pod: Obj, c: Obj, sources: Sources | None = None, ctx: EnvContext | None = None
) -> tuple[dict[str, str], list[str]]:
    """``(environment in order, invalid envFrom keys skipped)``; see the module docstring.

    Raises :class:`ConfigError` for missing required configuration and ``ValueError`` for a
    source this agent cannot resolve."""
    sources = sources or Sources()
    ctx = ctx or EnvContext()
    namespace = (pod.get("metadata") or {}).get("namespace") or "default"
    env = service_variables(sources.services, namespace)
    invalid: list[str] = []
    for src in c.get("envFrom") or []:
        kind, ref = (
            ("configmap", src["configMapRef"])
            if src.get("configMapRef")
            else ("secret", src.get("secretRef") or {})
        )
        data = sources.get(kind, ref.get("name", ""))
        if data is None:
            if ref.get("optional"):
                continue
            raise ConfigError(f'{kind} "{ref.get("name", "")}" not found')
        prefix = str(src.get("prefix") or "")
        for key in sorted(data):
            name = prefix + key
            if not _ENV_NAME.match(name):
                invalid.append(name)
                continue
            env[name] = data[key].decode(errors="replace")
    for item in c.get("env") or []:
        name = item["name"]
        source = item.get("valueFrom")
        if not source:
            env[name] = expand(str(item.get("value") or ""), env)
            continue
        if source.get("fieldRef"):
            path = source["fieldRef"]["fieldPath"]
            env[name] = field_ref(pod, path, ctx.pod_ip, ctx.host_ip)
        elif source.get("resourceFieldRef"):
            env[name] = resource_ref(
                pod,
                c["name"],
                source["resourceFieldRef"],
                ctx.cpu_capacity_millis,
                ctx.memory_capacity,
            )
        elif source.get("configMapKeyRef") or source.get("secretKeyRef"):
            kind = "configmap" if source.get("configMapKeyRef") else "secret"
            ref = source.get("configMapKeyRef") or source.get("secretKeyRef") or {}
            value, error = _key_ref(sources, kind, ref, namespace)
            if error is not None:
                if ref.get("optional"):
                    continue
                raise ConfigError(error)
            env[name] = value or ""
        else:
            raise ValueError(f"env {name}: valueFrom {sorted(source)} is not supported")
    return env, invalid

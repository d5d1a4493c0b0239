"""Node authorization and the NodeRestriction admission check.

A node agent authenticates as ``system:node:NAME`` in group ``system:nodes``. As in Kubernetes,
:class:`NodeAuthorizer` grants it what a kubelet needs and nothing about other nodes:

* read: nodes, pods, services, endpoints, endpointslices (the service proxy and DNS); a secret,
  configmap or PVC only when a pod bound to the node uses it, a PV only when such a PVC is bound
  to it (``get``, or ``list``/``watch`` of that one name);
* write: its own Node (and ``nodes/status``), its own Lease in ``kube-node-lease``, the status of
  pods bound to it, deletion (and eviction) of pods bound to it (a pod already gone: 404),
  tokens (``serviceaccounts/token``) of the ServiceAccounts its pods run as, events; ``create``
  of Nodes, Leases and Pods, which :class:`NodeRestriction` narrows to its own Node, its own
  Lease and mirror pods bound to it;
* token and access reviews (delegated authentication/authorization).

The node agent's requests (kubelet/node.py, agent.py, podworker.py, env.py, volumes.py,
proxy/, dns.py, machinery/events.py) are all in this list: get/create/patch its Node and
``nodes/status``, list nodes (pod CIDR allocation), get/create/update its Lease, list/watch pods,
patch ``pods/status`` and delete its pods, get the configmaps/secrets/PVCs/PVs its pods use,
list/watch services and endpointslices, create/patch events. Not allowed: creating the
``kube-node-lease`` namespace (the API server creates it at start).

Anything else gets no opinion, so RBAC still decides (Kubernetes does the same). Who uses what
is looked up in the watch cache through a pods-by-node index kept current from cache events.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from apiserver.auth import NODE_PREFIX, NODES, REQUEST_USER, Attributes, Decision, UserInfo
from apiserver.storage import Key
from machinery import errors

if TYPE_CHECKING:
    from apiserver.cache import WatchCache
    from machinery.kinds import ResourceType

PODS, PVCS = "/pods", "/persistentvolumeclaims"
LEASE_NAMESPACE = "kube-node-lease"
MIRROR_ANNOTATION = "kubernetes.io/config.mirror"
RESTRICTED_LABEL_PREFIX = "node-restriction.kubernetes.io/"
READ = ("get", "list", "watch")
WRITE = ("update", "patch")

#: (group, resource incl. subresource) → verbs every node has (Kubernetes' NodeRules, reduced
#: to what tugboat serves).
STATIC: dict[tuple[str, str], tuple[str, ...]] = {
    ("", "nodes"): READ,
    ("", "pods"): READ,
    ("", "services"): READ,
    ("", "endpoints"): READ,
    ("discovery.k8s.io", "endpointslices"): READ,
    ("", "events"): ("create", "update", "patch"),
    ("events.k8s.io", "events"): ("create", "update", "patch"),
    ("authentication.k8s.io", "tokenreviews"): ("create",),
    ("authorization.k8s.io", "subjectaccessreviews"): ("create",),
    ("authorization.k8s.io", "selfsubjectaccessreviews"): ("create",),
    ("authorization.k8s.io", "selfsubjectrulesreviews"): ("create",),
    ("authentication.k8s.io", "selfsubjectreviews"): ("create",),
}


def node_name(user: UserInfo) -> str | None:
    """The node a user is, or None."""
    if NODES in user.groups and user.name.startswith(NODE_PREFIX):
        return user.name[len(NODE_PREFIX) :] or None
    return None


def _pod_specs(pod: dict[str, Any]) -> Iterator[dict[str, Any]]:
    spec = pod.get("spec") or {}
    for key in ("containers", "initContainers", "ephemeralContainers"):
        for c in spec.get(key) or ():
            if isinstance(c, dict):
                yield c


def pod_references(pod: dict[str, Any]) -> dict[str, set[str]]:
    """Names of the secrets, configmaps and PVCs a pod uses (volumes, projected sources,
    env and envFrom, imagePullSecrets, generic ephemeral volumes)."""
    spec = pod.get("spec") or {}
    refs: dict[str, set[str]] = {"secrets": set(), "configmaps": set(), "pvcs": set()}
    pod_name = (pod.get("metadata") or {}).get("name", "")
    for s in spec.get("imagePullSecrets") or ():
        refs["secrets"].add((s or {}).get("name", ""))
    for v in spec.get("volumes") or ():
        v = v or {}
        if v.get("secret"):
            refs["secrets"].add(v["secret"].get("secretName", ""))
        if v.get("configMap"):
            refs["configmaps"].add(v["configMap"].get("name", ""))
        if v.get("persistentVolumeClaim"):
            refs["pvcs"].add(v["persistentVolumeClaim"].get("claimName", ""))
        if v.get("ephemeral"):
            refs["pvcs"].add(f"{pod_name}-{v.get('name', '')}")
        for src in (v.get("projected") or {}).get("sources") or ():
            src = src or {}
            if src.get("secret"):
                refs["secrets"].add(src["secret"].get("name", ""))
            if src.get("configMap"):
                refs["configmaps"].add(src["configMap"].get("name", ""))
    for c in _pod_specs(pod):
        for env in c.get("env") or ():
            source = (env or {}).get("valueFrom") or {}
            if source.get("secretKeyRef"):
                refs["secrets"].add(source["secretKeyRef"].get("name", ""))
            if source.get("configMapKeyRef"):
                refs["configmaps"].add(source["configMapKeyRef"].get("name", ""))
        for env_from in c.get("envFrom") or ():
            env_from = env_from or {}
            if env_from.get("secretRef"):
                refs["secrets"].add(env_from["secretRef"].get("name", ""))
            if env_from.get("configMapRef"):
                refs["configmaps"].add(env_from["configMapRef"].get("name", ""))
    return refs


class NodeAuthorizer:
    """Kubernetes' Node authorizer over the watch cache; see the module docstring."""

    def __init__(self, cache: WatchCache) -> None:
        self.cache = cache
        self._pods: dict[str, set[tuple[str, str]]] | None = None  # node → pods, built lazily
        cache.listen(PODS, self._follow)

    # -- the pods-by-node index -----------------------------------------------------------------
    def _index(self) -> dict[str, set[tuple[str, str]]]:
        if self._pods is None:
            self._pods = {}
            for (ns, name), entry in self.cache.list(PODS):
                self._add(entry.obj, ns, name)
        return self._pods

    def _add(self, pod: dict[str, Any], ns: str, name: str) -> None:
        assert self._pods is not None
        node = (pod.get("spec") or {}).get("nodeName")
        if node:
            self._pods.setdefault(node, set()).add((ns, name))

    def _follow(self, _typ: str, new: dict[str, Any] | None, old: dict[str, Any] | None) -> None:
        if self._pods is None:  # not built yet: it will be built from the cache
            return
        if old is not None:
            m = old.get("metadata") or {}
            node = (old.get("spec") or {}).get("nodeName")
            if node and node in self._pods:
                self._pods[node].discard((m.get("namespace", ""), m.get("name", "")))
                if not self._pods[node]:
                    del self._pods[node]
        if new is not None:
            m = new.get("metadata") or {}
            self._add(new, m.get("namespace", ""), m.get("name", ""))

    def pods_on(self, node: str) -> list[dict[str, Any]]:
        out = []
        for ns, name in self._index().get(node, ()):
            entry = self.cache.get(Key(PODS, ns, name))
            if entry is not None:
                out.append(entry.obj)
        return out

    def _bound(self, node: str, namespace: str, name: str) -> bool:
        """Whether the pod is bound to ``node``; a pod that does not exist counts (the request
        then fails with 404, as in Kubernetes, where NodeRestriction checks existing pods)."""
        entry = self.cache.get(Key(PODS, namespace, name))
        return entry is None or (entry.obj.get("spec") or {}).get("nodeName") == node

    def _uses(self, node: str, kind: str, namespace: str, name: str) -> bool:
        return any(
            (pod.get("metadata") or {}).get("namespace") == namespace
            and name in pod_references(pod)[kind]
            for pod in self.pods_on(node)
        )

    def _runs_as(self, node: str, namespace: str, account: str) -> bool:
        """Whether a pod bound to ``node`` runs as ServiceAccount ``namespace/account``."""
        return bool(account) and any(
            (pod.get("metadata") or {}).get("namespace") == namespace
            and ((pod.get("spec") or {}).get("serviceAccountName") or "default") == account
            for pod in self.pods_on(node)
        )

    def _uses_pv(self, node: str, name: str) -> bool:
        for pod in self.pods_on(node):
            ns = (pod.get("metadata") or {}).get("namespace", "")
            for claim in pod_references(pod)["pvcs"]:
                pvc = self.cache.get(Key(PVCS, ns, claim))
                if pvc is not None and (pvc.obj.get("spec") or {}).get("volumeName") == name:
                    return True
        return False

    # -- decisions ------------------------------------------------------------------------------
    def authorize(self, attrs: Attributes) -> tuple[Decision, str]:
        node = node_name(attrs.user)
        if node is None or not attrs.resource_request:
            return Decision.NO_OPINION, ""
        allowed = self._decide(node, attrs)
        if allowed is None:
            verbs = STATIC.get((attrs.api_group, _combined(attrs)), ())
            allowed = attrs.verb in verbs
            return (Decision.ALLOW, "") if allowed else (Decision.NO_OPINION, "")
        if allowed:
            return Decision.ALLOW, ""
        return Decision.NO_OPINION, f"no relationship found between node '{node}' and this object"

    def _decide(self, node: str, a: Attributes) -> bool | None:
        """True/False for the resources decided by relationship; None for the static rules."""
        res, verb = _combined(a), a.verb
        if a.api_group == "coordination.k8s.io" and res == "leases":
            if a.namespace != LEASE_NAMESPACE:
                return False
            return verb == "create" or (verb in ("get", *WRITE, "delete") and a.name == node)
        if a.api_group != "":
            return None
        if res in ("secrets", "configmaps", "persistentvolumeclaims"):
            kind = {"persistentvolumeclaims": "pvcs"}.get(res, res)
            return verb in READ and bool(a.name) and self._uses(node, kind, a.namespace, a.name)
        if res == "persistentvolumes":
            return verb in READ and bool(a.name) and self._uses_pv(node, a.name)
        if res in ("nodes", "nodes/status"):
            if verb in (*WRITE, "delete"):
                return a.name == node
            if verb == "create":
                return res == "nodes"
            return None
        if res == "pods/status":
            return verb in (*WRITE, "get") and self._bound(node, a.namespace, a.name)
        if res == "pods/eviction":
            return verb == "create" and self._bound(node, a.namespace, a.name)
        if res == "serviceaccounts/token":
            return verb == "create" and self._runs_as(node, a.namespace, a.name)
        if res == "pods" and verb == "delete":
            return bool(a.name) and self._bound(node, a.namespace, a.name)
        if res == "pods" and verb == "create":
            return True  # NodeRestriction: mirror pods bound to this node only
        return None


def _combined(a: Attributes) -> str:
    return f"{a.resource}/{a.subresource}" if a.subresource else a.resource


class NodeRestriction:
    """Admission: a node may create or change only its own Node, its own Lease, and pods bound
    to it (creating only mirror pods); it may not set ``node-restriction.kubernetes.io/``
    labels. Other users, and requests without a user, pass."""

    def __call__(self, rt: ResourceType, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
        user = REQUEST_USER.get()
        node = node_name(user) if user is not None else None
        if node is None:
            return
        key = rt.storage_key
        m = obj.get("metadata") or {}
        name = m.get("name", "")
        if key == "/nodes":
            if name != node:
                raise _forbidden(f'node "{node}" is not allowed to modify node "{name}"')
            labels = m.get("labels") or {}
            before = ((old or {}).get("metadata") or {}).get("labels") or {}
            changed = sorted(
                k
                for k in set(labels) | set(before)
                if k.startswith(RESTRICTED_LABEL_PREFIX) and labels.get(k) != before.get(k)
            )
            if changed:
                raise _forbidden(
                    f'node "{node}" is not allowed to modify labels: {", ".join(changed)}'
                )
        elif key == "/pods":
            bound = (obj.get("spec") or {}).get("nodeName")
            if old is None:
                if MIRROR_ANNOTATION not in (m.get("annotations") or {}):
                    raise _forbidden(
                        f'pod does not have "{MIRROR_ANNOTATION}" annotation, node "{node}" '
                        "can only create mirror pods"
                    )
                if bound != node:
                    raise _forbidden(
                        f'node "{node}" can only create pods with spec.nodeName set to itself'
                    )
            elif ((old.get("spec") or {}).get("nodeName")) != node:
                raise _forbidden(
                    f'node "{node}" can only update pod status for pods with spec.nodeName set '
                    "to itself"
                )
        elif key == "coordination.k8s.io/leases" and (
            m.get("namespace") != LEASE_NAMESPACE or name != node
        ):
            raise _forbidden("can only access node lease with the same name as the requesting node")


def _forbidden(message: str) -> errors.Forbidden:
    return errors.Forbidden(message)

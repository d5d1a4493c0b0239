"""The node authorizer and NodeRestriction: a node reaches what its pods use, writes only its own
objects."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from apiserver.auth import REQUEST_USER, Attributes, Decision, UserInfo
from apiserver.auth.node import NodeAuthorizer, NodeRestriction, pod_references
from apiserver.cache import WatchCache
from apiserver.storage import Key
from machinery import errors
from machinery.kinds import lookup

N1 = UserInfo("system:node:n1", groups=("system:nodes", "system:authenticated"))


def pod(name: str, node: str, **spec: Any) -> dict[str, Any]:
    return {
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "app"},
        "spec": {"nodeName": node, "containers": [{"name": "c", "image": "i"}], **spec},
    }


P1 = pod(
    "p1",
    "n1",
    volumes=[
        {"name": "s", "secret": {"secretName": "s1"}},
        {"name": "d", "persistentVolumeClaim": {"claimName": "claim1"}},
        {"name": "p", "projected": {"sources": [{"configMap": {"name": "c2"}}]}},
    ],
    containers=[
        {
            "name": "c",
            "image": "i",
            "env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "c1", "key": "k"}}}],
            "envFrom": [{"secretRef": {"name": "s3"}}],
        }
    ],
)
P2 = pod("p2", "n2", volumes=[{"name": "s", "secret": {"secretName": "s2"}}])


@pytest.fixture
def cache() -> WatchCache:
    c = WatchCache()
    objs = [
        ("/pods", "app", "p1", P1),
        ("/pods", "app", "p2", P2),
        ("/persistentvolumeclaims", "app", "claim1", {"spec": {"volumeName": "pv1"}}),
    ]
    for rev, (res, ns, name, obj) in enumerate(objs, 1):
        c.apply("ADDED", Key(res, ns, name), rev, obj, orjson.dumps(obj))
    return c


def a(verb: str, resource: str, name: str = "", ns: str = "app", **kw: Any) -> Attributes:
    return Attributes(N1, verb, namespace=ns, resource=resource, name=name, **kw)


CASES = [
    ("own pod's secret", a("get", "secrets", "s1"), True),
    ("own pod's envFrom secret", a("get", "secrets", "s3"), True),
    ("own pod's configmap", a("get", "configmaps", "c1"), True),
    ("own pod's projected configmap", a("watch", "configmaps", "c2"), True),
    ("other pod's secret", a("get", "secrets", "s2"), False),
    ("secret list", a("list", "secrets"), False),
    ("secret write", a("update", "secrets", "s1"), False),
    ("own pod's pvc", a("get", "persistentvolumeclaims", "claim1"), True),
    ("pv of own pvc", a("get", "persistentvolumes", "pv1", ns=""), True),
    ("other pv", a("get", "persistentvolumes", "pv2", ns=""), False),
    ("own node status", a("patch", "nodes", "n1", ns="", subresource="status"), True),
    ("other node status", a("patch", "nodes", "n2", ns="", subresource="status"), False),
    ("other node", a("update", "nodes", "n2", ns=""), False),
    ("list nodes", a("list", "nodes", ns=""), True),
    ("create node", a("create", "nodes", ns=""), True),
    (
        "own lease",
        a("update", "leases", "n1", ns="kube-node-lease", api_group="coordination.k8s.io"),
        True,
    ),
    (
        "other lease",
        a("update", "leases", "n2", ns="kube-node-lease", api_group="coordination.k8s.io"),
        False,
    ),
    (
        "lease elsewhere",
        a("get", "leases", "n1", ns="kube-system", api_group="coordination.k8s.io"),
        False,
    ),
    ("own pod status", a("patch", "pods", "p1", subresource="status"), True),
    ("other pod status", a("patch", "pods", "p2", subresource="status"), False),
    ("delete own pod", a("delete", "pods", "p1"), True),
    ("delete other pod", a("delete", "pods", "p2"), False),
    ("delete a missing pod: 404 follows", a("delete", "pods", "gone"), True),
    ("watch pods", a("watch", "pods", ns=""), True),
    ("update a pod", a("update", "pods", "p1"), False),
    ("services", a("list", "services", ns=""), True),
    ("endpointslices", a("watch", "endpointslices", ns="", api_group="discovery.k8s.io"), True),
    ("events", a("create", "events"), True),
    (
        "token of own pod's account",
        a("create", "serviceaccounts", "default", subresource="token"),
        True,
    ),
    (
        "token of another account",
        a("create", "serviceaccounts", "other", subresource="token"),
        False,
    ),
    (
        "token elsewhere",
        a("create", "serviceaccounts", "default", ns="x", subresource="token"),
        False,
    ),
    ("deployments", a("list", "deployments", api_group="apps"), False),
]


@pytest.mark.parametrize(("attrs", "allowed"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_node_authorizer(cache, attrs, allowed):
    decision, _ = NodeAuthorizer(cache).authorize(attrs)
    assert (decision is Decision.ALLOW) is allowed
    assert decision is not Decision.DENY  # RBAC still gets its say


def test_other_users_get_no_opinion(cache):
    alice = Attributes(UserInfo("alice"), "get", namespace="app", resource="secrets", name="s1")
    assert NodeAuthorizer(cache).authorize(alice) == (Decision.NO_OPINION, "")
    fake = UserInfo("system:node:n1")  # not in system:nodes
    assert NodeAuthorizer(cache).authorize(
        Attributes(fake, "get", namespace="app", resource="secrets", name="s1")
    ) == (Decision.NO_OPINION, "")


def test_index_follows_pod_moves(cache):
    authz = NodeAuthorizer(cache)
    assert authz.authorize(a("get", "secrets", "s2"))[0] is Decision.NO_OPINION
    moved = pod("p3", "n1", volumes=[{"name": "s", "secret": {"secretName": "s2"}}])
    cache.apply("ADDED", Key("/pods", "app", "p3"), 10, moved, orjson.dumps(moved))
    assert authz.authorize(a("get", "secrets", "s2"))[0] is Decision.ALLOW
    cache.apply("DELETED", Key("/pods", "app", "p3"), 11, moved, orjson.dumps(moved))
    assert authz.authorize(a("get", "secrets", "s2"))[0] is Decision.NO_OPINION


def test_pod_references():
    refs = pod_references(P1)
    assert refs == {"secrets": {"s1", "s3"}, "configmaps": {"c1", "c2"}, "pvcs": {"claim1"}}


def _node(name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {"kind": "Node", "metadata": {"name": name, "labels": labels or {}}}


MIRROR = {"kubernetes.io/config.mirror": "x"}
RESTRICTION = [
    ("own node", "nodes", _node("n1"), None, None),
    ("other node", "nodes", _node("n2"), None, 'not allowed to modify node "n2"'),
    (
        "restricted label",
        "nodes",
        _node("n1", {"node-restriction.kubernetes.io/x": "y"}),
        _node("n1"),
        "labels",
    ),
    (
        "mirror pod",
        "pods",
        {**pod("m", "n1"), "metadata": {"name": "m", "annotations": MIRROR}},
        None,
        None,
    ),
    ("plain pod", "pods", pod("m", "n1"), None, "can only create mirror pods"),
    (
        "mirror pod elsewhere",
        "pods",
        {**pod("m", "n2"), "metadata": {"name": "m", "annotations": MIRROR}},
        None,
        "spec.nodeName",
    ),
    ("other pod update", "pods", P2, P2, "can only update pod status"),
    (
        "own lease",
        "leases",
        {"metadata": {"name": "n1", "namespace": "kube-node-lease"}},
        None,
        None,
    ),
    (
        "other lease",
        "leases",
        {"metadata": {"name": "n2", "namespace": "kube-node-lease"}},
        None,
        "node lease",
    ),
]


@pytest.mark.parametrize(
    ("resource", "obj", "old", "refused"),
    [c[1:] for c in RESTRICTION],
    ids=[c[0] for c in RESTRICTION],
)
def test_node_restriction(resource, obj, old, refused):
    check = NodeRestriction()
    token = REQUEST_USER.set(N1)
    try:
        if refused is None:
            check(lookup(resource), obj, old)
        else:
            with pytest.raises(errors.Forbidden, match=refused):
                check(lookup(resource), obj, old)
    finally:
        REQUEST_USER.reset(token)
    check(lookup(resource), obj, old)  # no request user: the server itself, always allowed

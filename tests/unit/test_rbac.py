"""RBAC: rule matching, binding resolution, aggregation and escalation, over a real watch cache."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from apiserver.auth import MASTERS, REQUEST_USER, Attributes, Decision, UserInfo
from apiserver.auth.bootstrap import AUTOUPDATE, default_objects, reconciled
from apiserver.auth.rbac import (
    CLUSTER_ROLE_BINDINGS,
    CLUSTER_ROLES,
    ROLE_BINDINGS,
    ROLES,
    EscalationCheck,
    RBACAuthorizer,
    Rule,
    rule_allows,
    uncovered,
)
from apiserver.cache import WatchCache
from apiserver.storage import Key
from machinery import errors
from machinery.kinds import lookup

G = "rbac.authorization.k8s.io"
KEYS = {
    "Role": ROLES,
    "ClusterRole": CLUSTER_ROLES,
    "RoleBinding": ROLE_BINDINGS,
    "ClusterRoleBinding": CLUSTER_ROLE_BINDINGS,
}
ALICE = UserInfo("alice", groups=("devs", "system:authenticated"))


class Cluster:
    """A watch cache fed RBAC objects as the store would feed it."""

    def __init__(self) -> None:
        self.cache = WatchCache()
        self.rev = 0

    def put(self, obj: dict[str, Any], typ: str | None = None) -> None:
        self.rev += 1
        m = obj["metadata"]
        key = Key(KEYS[obj["kind"]], m.get("namespace", ""), m["name"])
        if typ is None:
            typ = "MODIFIED" if self.cache.get(key) else "ADDED"
        self.cache.apply(typ, key, self.rev, obj, orjson.dumps(obj))

    def delete(self, obj: dict[str, Any]) -> None:
        self.put(obj, "DELETED")


def role(name: str, rules: list[dict[str, Any]], ns: str = "", **extra: Any) -> dict[str, Any]:
    kind = "Role" if ns else "ClusterRole"
    meta: dict[str, Any] = {"name": name, **({"namespace": ns} if ns else {})}
    if "labels" in extra:
        meta["labels"] = extra.pop("labels")
    return {"kind": kind, "metadata": meta, "rules": rules, **extra}


def bind(
    name: str, ref_kind: str, ref: str, subjects: list[dict[str, Any]], ns: str = ""
) -> dict[str, Any]:
    return {
        "kind": "RoleBinding" if ns else "ClusterRoleBinding",
        "metadata": {"name": name, **({"namespace": ns} if ns else {})},
        "roleRef": {"apiGroup": G, "kind": ref_kind, "name": ref},
        "subjects": subjects,
    }


def user(name: str) -> dict[str, str]:
    return {"kind": "User", "apiGroup": G, "name": name}


def r(verbs: list[str], groups: list[str], resources: list[str], names: list[str] | None = None):
    out: dict[str, Any] = {"verbs": verbs, "apiGroups": groups, "resources": resources}
    if names:
        out["resourceNames"] = names
    return out


def attrs(verb: str, resource: str = "", **kw: Any) -> Attributes:
    return Attributes(kw.pop("user", ALICE), verb, resource=resource, **kw)


# -- rule matching -------------------------------------------------------------------------------

MATCHING = [
    ("exact", r(["get"], [""], ["pods"]), attrs("get", "pods"), True),
    ("other verb", r(["get"], [""], ["pods"]), attrs("list", "pods"), False),
    ("verb star", r(["*"], [""], ["pods"]), attrs("delete", "pods"), True),
    ("other group", r(["get"], [""], ["pods"]), attrs("get", "pods", api_group="apps"), False),
    (
        "group star",
        r(["get"], ["*"], ["deployments"]),
        attrs("get", "deployments", api_group="apps"),
        True,
    ),
    ("resource star", r(["get"], [""], ["*"]), attrs("get", "secrets"), True),
    (
        "star covers subresource",
        r(["get"], [""], ["*"]),
        attrs("get", "pods", subresource="log"),
        True,
    ),
    (
        "parent not subresource",
        r(["get"], [""], ["pods"]),
        attrs("get", "pods", subresource="log"),
        False,
    ),
    ("subresource", r(["get"], [""], ["pods/log"]), attrs("get", "pods", subresource="log"), True),
    ("subresource not parent", r(["get"], [""], ["pods/log"]), attrs("get", "pods"), False),
    (
        "star slash scale",
        r(["update"], ["apps"], ["*/scale"]),
        attrs("update", "deployments", api_group="apps", subresource="scale"),
        True,
    ),
    (
        "star slash scale not status",
        r(["update"], ["apps"], ["*/scale"]),
        attrs("update", "deployments", api_group="apps", subresource="status"),
        False,
    ),
    (
        "star slash scale not parent",
        r(["update"], ["apps"], ["*/scale"]),
        attrs("update", "deployments", api_group="apps"),
        False,
    ),
    (
        "resourceName",
        r(["get"], [""], ["configmaps"], ["a"]),
        attrs("get", "configmaps", name="a"),
        True,
    ),
    (
        "other resourceName",
        r(["get"], [""], ["configmaps"], ["a"]),
        attrs("get", "configmaps", name="b"),
        False,
    ),
    (
        "resourceName needs a name",
        r(["list"], [""], ["configmaps"], ["a"]),
        attrs("list", "configmaps"),
        False,
    ),
    (
        "url exact",
        {"verbs": ["get"], "nonResourceURLs": ["/healthz"]},
        attrs("get", resource_request=False, path="/healthz"),
        True,
    ),
    (
        "url trailing star",
        {"verbs": ["get"], "nonResourceURLs": ["/apis/*"]},
        attrs("get", resource_request=False, path="/apis/apps/v1"),
        True,
    ),
    (
        "url star",
        {"verbs": ["*"], "nonResourceURLs": ["*"]},
        attrs("post", resource_request=False, path="/x"),
        True,
    ),
    (
        "url other",
        {"verbs": ["get"], "nonResourceURLs": ["/healthz"]},
        attrs("get", resource_request=False, path="/version"),
        False,
    ),
    (
        "url rule not resources",
        {"verbs": ["get"], "nonResourceURLs": ["*"]},
        attrs("get", "pods"),
        False,
    ),
    (
        "resource rule not urls",
        r(["get"], ["*"], ["*"]),
        attrs("get", resource_request=False, path="/api"),
        False,
    ),
]


@pytest.mark.parametrize(
    ("rule", "request_attrs", "allowed"), [m[1:] for m in MATCHING], ids=[m[0] for m in MATCHING]
)
def test_rule_allows(rule, request_attrs, allowed):
    assert rule_allows(Rule.from_dict(rule), request_attrs) is allowed


# -- binding resolution --------------------------------------------------------------------------


@pytest.fixture
def cluster() -> Cluster:
    c = Cluster()
    c.put(role("pod-reader", [r(["get", "list"], [""], ["pods"])], ns="team"))
    c.put(role("secret-reader", [r(["get", "list"], [""], ["secrets"])]))
    c.put(role("node-reader", [r(["get"], [""], ["nodes"])]))
    return c


def decide(c: Cluster, a: Attributes) -> tuple[Decision, str]:
    return RBACAuthorizer(c.cache).authorize(a)


def test_rolebinding_grants_only_in_its_namespace(cluster):
    cluster.put(bind("rb", "Role", "pod-reader", [user("alice")], ns="team"))
    authz = RBACAuthorizer(cluster.cache)
    decision, reason = authz.authorize(attrs("list", "pods", namespace="team"))
    assert decision is Decision.ALLOW
    assert reason == 'RBAC: allowed by RoleBinding "rb/team" of Role "pod-reader" to User "alice"'
    assert authz.authorize(attrs("list", "pods", namespace="other")) == (Decision.NO_OPINION, "")
    assert authz.authorize(attrs("list", "pods"))[0] is Decision.NO_OPINION


def test_rolebinding_to_clusterrole_is_namespaced(cluster):
    cluster.put(bind("rb", "ClusterRole", "secret-reader", [user("alice")], ns="team"))
    authz = RBACAuthorizer(cluster.cache)
    assert authz.authorize(attrs("get", "secrets", namespace="team"))[0] is Decision.ALLOW
    assert authz.authorize(attrs("get", "secrets", namespace="x"))[0] is Decision.NO_OPINION
    assert authz.authorize(attrs("list", "secrets"))[0] is Decision.NO_OPINION


def test_clusterrolebinding_grants_everywhere_by_group(cluster):
    subject = {"kind": "Group", "apiGroup": G, "name": "devs"}
    cluster.put(bind("crb", "ClusterRole", "secret-reader", [subject]))
    authz = RBACAuthorizer(cluster.cache)
    for ns in ("", "a", "b"):
        decision, reason = authz.authorize(attrs("list", "secrets", namespace=ns))
        assert decision is Decision.ALLOW
    assert 'to Group "devs"' in reason
    bob = UserInfo("bob")
    assert authz.authorize(attrs("list", "secrets", user=bob))[0] is Decision.NO_OPINION


def test_serviceaccount_subject_matches_its_user_name(cluster):
    sa = {"kind": "ServiceAccount", "name": "builder"}  # namespace defaults to the binding's
    cluster.put(bind("rb", "Role", "pod-reader", [sa], ns="team"))
    authz = RBACAuthorizer(cluster.cache)
    robot = UserInfo("system:serviceaccount:team:builder", groups=("system:serviceaccounts",))
    assert authz.authorize(attrs("get", "pods", namespace="team", user=robot))[0] is Decision.ALLOW
    other = UserInfo("system:serviceaccount:other:builder")
    assert authz.authorize(attrs("get", "pods", namespace="team", user=other))[0] is (
        Decision.NO_OPINION
    )


def test_index_follows_updates_and_deletes(cluster):
    authz = RBACAuthorizer(cluster.cache)
    a = attrs("get", "nodes")
    assert authz.authorize(a)[0] is Decision.NO_OPINION
    b = bind("crb", "ClusterRole", "node-reader", [user("alice")])
    cluster.put(b)
    assert authz.authorize(a)[0] is Decision.ALLOW
    cluster.put({**b, "subjects": [user("bob")]})
    assert authz.authorize(a)[0] is Decision.NO_OPINION
    cluster.put(b)
    cluster.put(role("node-reader", [r(["list"], [""], ["nodes"])]))  # the role changes
    assert authz.authorize(a)[0] is Decision.NO_OPINION
    assert authz.authorize(attrs("list", "nodes"))[0] is Decision.ALLOW
    cluster.delete(b)
    assert authz.authorize(attrs("list", "nodes"))[0] is Decision.NO_OPINION


def test_missing_role_is_the_no_opinion_reason(cluster):
    cluster.put(bind("crb", "ClusterRole", "ghost", [user("alice")]))
    decision, reason = decide(cluster, attrs("get", "pods"))
    assert decision is Decision.NO_OPINION
    assert reason == f'RBAC: clusterroles.{G} "ghost" not found'


def test_resource_names_in_a_binding(cluster):
    cluster.put(role("one-cm", [r(["get", "update"], [""], ["configmaps"], ["app"])], ns="team"))
    cluster.put(bind("rb", "Role", "one-cm", [user("alice")], ns="team"))
    authz = RBACAuthorizer(cluster.cache)
    assert authz.authorize(attrs("get", "configmaps", namespace="team", name="app"))[0] is (
        Decision.ALLOW
    )
    assert authz.authorize(attrs("get", "configmaps", namespace="team", name="db"))[0] is (
        Decision.NO_OPINION
    )


# -- aggregation ---------------------------------------------------------------------------------


def test_bootstrap_aggregation_view_edit_admin():
    c = Cluster()
    for obj in default_objects():
        if obj["kind"] == "ClusterRole":
            c.put(obj)
    authz = RBACAuthorizer(c.cache)
    view, edit, admin = (set(authz.cluster_role_rules(n) or ()) for n in ("view", "edit", "admin"))
    assert view and view < edit < admin
    read_pods = attrs("list", "pods", namespace="x")
    write_deploy = attrs("create", "deployments", api_group="apps", namespace="x")
    read_secrets = attrs("get", "secrets", namespace="x")
    write_roles = attrs("create", "roles", api_group=G, namespace="x")
    for name, allowed in (
        ("view", (True, False, False, False)),
        ("edit", (True, True, True, False)),
        ("admin", (True, True, True, True)),
    ):
        rules = authz.cluster_role_rules(name) or ()
        got = tuple(
            any(rule_allows(rule, a) for rule in rules)
            for a in (read_pods, write_deploy, read_secrets, write_roles)
        )
        assert got == allowed, name


def test_aggregation_follows_labelled_roles():
    c = Cluster()
    agg = {"clusterRoleSelectors": [{"matchLabels": {"team": "x"}}]}
    c.put(role("combined", [r(["get"], [""], ["stale"])], aggregationRule=agg))
    authz = RBACAuthorizer(c.cache)
    assert authz.cluster_role_rules("combined") == ()  # its own rules do not count
    c.put(role("a", [r(["get"], [""], ["pods"])], labels={"team": "x"}))
    c.put(
        role("b", [r(["get"], [""], ["pods"]), r(["list"], [""], ["nodes"])], labels={"team": "x"})
    )
    c.put(role("c", [r(["get"], [""], ["secrets"])], labels={"team": "y"}))
    got = authz.cluster_role_rules("combined")
    assert got == (
        Rule.from_dict(r(["get"], [""], ["pods"])),
        Rule.from_dict(r(["list"], [""], ["nodes"])),
    )
    c.put(role("c", [r(["get"], [""], ["secrets"])], labels={"team": "x"}))
    assert Rule.from_dict(r(["get"], [""], ["secrets"])) in (
        authz.cluster_role_rules("combined") or ()
    )


# -- escalation ----------------------------------------------------------------------------------

COVERS = [
    ("same", [r(["get"], [""], ["pods"])], [r(["get"], [""], ["pods"])], True),
    ("more verbs", [r(["get"], [""], ["pods"])], [r(["get", "delete"], [""], ["pods"])], False),
    ("owner star verb", [r(["*"], [""], ["pods"])], [r(["get", "delete"], [""], ["pods"])], True),
    (
        "servant star needs star",
        [r(["get", "list"], [""], ["pods"])],
        [r(["*"], [""], ["pods"])],
        False,
    ),
    ("owner star resource", [r(["get"], [""], ["*"])], [r(["get"], [""], ["pods/log"])], True),
    ("owner star slash sub", [r(["get"], [""], ["*/log"])], [r(["get"], [""], ["pods/log"])], True),
    (
        "names narrow",
        [r(["get"], [""], ["cm"], ["a", "b"])],
        [r(["get"], [""], ["cm"], ["a"])],
        True,
    ),
    ("names broaden", [r(["get"], [""], ["cm"], ["a"])], [r(["get"], [""], ["cm"])], False),
    (
        "urls",
        [{"verbs": ["get"], "nonResourceURLs": ["/apis/*"]}],
        [{"verbs": ["get"], "nonResourceURLs": ["/apis/apps"]}],
        True,
    ),
    (
        "urls not held",
        [r(["*"], ["*"], ["*"])],
        [{"verbs": ["get"], "nonResourceURLs": ["/x"]}],
        False,
    ),
]


@pytest.mark.parametrize(
    ("owner", "servant", "covered"), [c[1:] for c in COVERS], ids=[c[0] for c in COVERS]
)
def test_covers(owner, servant, covered):
    owned = [Rule.from_dict(x) for x in owner]
    assert (not uncovered(owned, [Rule.from_dict(x) for x in servant])) is covered


def _as(u: UserInfo | None):
    return REQUEST_USER.set(u)


@pytest.fixture
def escalation(cluster) -> EscalationCheck:
    cluster.put(bind("rb", "Role", "pod-reader", [user("alice")], ns="team"))
    return EscalationCheck(RBACAuthorizer(cluster.cache))


@pytest.mark.parametrize(
    ("kind", "obj", "ok"),
    [
        ("roles", role("r", [r(["get"], [""], ["pods"])], ns="team"), True),
        ("roles", role("r", [r(["delete"], [""], ["pods"])], ns="team"), False),
        ("roles", role("r", [r(["get"], [""], ["pods"])], ns="elsewhere"), False),
        ("rolebindings", bind("b", "Role", "pod-reader", [user("bob")], ns="team"), True),
        (
            "rolebindings",
            bind("b", "ClusterRole", "secret-reader", [user("bob")], ns="team"),
            False,
        ),
        ("clusterroles", role("cr", [r(["get"], [""], ["pods"])]), False),
    ],
    ids=["role held", "role more verbs", "role other ns", "bind held", "bind not held", "cluster"],
)
def test_escalation(escalation, kind, obj, ok):
    token = _as(ALICE)
    try:
        if ok:
            escalation(lookup(kind), obj, None)
        else:
            with pytest.raises(errors.Forbidden) as err:
                escalation(lookup(kind), obj, None)
            assert "is forbidden" in err.value.message
    finally:
        REQUEST_USER.reset(token)


def test_escalate_and_bind_verbs_allow_what_is_not_held(cluster, escalation):
    cluster.put(
        role("granter", [r(["escalate", "bind"], [G], ["roles", "clusterroles"])], ns="team")
    )
    cluster.put(bind("g", "Role", "granter", [user("alice")], ns="team"))
    token = _as(ALICE)
    try:
        escalation(lookup("roles"), role("r", [r(["*"], ["*"], ["*"])], ns="team"), None)
        binding = bind("b", "ClusterRole", "secret-reader", [user("bob")], ns="team")
        escalation(lookup("rolebindings"), binding, None)
    finally:
        REQUEST_USER.reset(token)


def test_masters_and_the_server_itself_are_exempt(escalation):
    everything = role("cr", [r(["*"], ["*"], ["*"])])
    for who in (None, UserInfo("root", groups=(MASTERS,))):
        token = _as(who)
        try:
            escalation(lookup("clusterroles"), everything, None)
        finally:
            REQUEST_USER.reset(token)


def test_aggregation_rule_needs_full_authority(cluster, escalation):
    verbs = ["get", "list", "watch", "create", "update", "patch", "delete"]
    cluster.put(role("most", [r(verbs, ["*"], ["*"])]))
    cluster.put(bind("crb", "ClusterRole", "most", [user("alice")]))
    agg = {"clusterRoleSelectors": [{"matchLabels": {"x": "y"}}]}
    token = _as(ALICE)
    try:
        with pytest.raises(errors.Forbidden, match="aggregationRule"):
            escalation(lookup("clusterroles"), role("agg", [], aggregationRule=agg), None)
        cluster.put(
            role("most", [r(["*"], ["*"], ["*"]), {"verbs": ["*"], "nonResourceURLs": ["*"]}])
        )
        escalation(lookup("clusterroles"), role("agg", [], aggregationRule=agg), None)
    finally:
        REQUEST_USER.reset(token)


# -- default policy reconciliation ---------------------------------------------------------------


def _default(name: str) -> dict[str, Any]:
    return next(o for o in default_objects() if o["metadata"]["name"] == name)


def test_reconcile_adds_missing_rules_and_keeps_extras():
    default = _default("system:node-proxier")
    extra = r(["get"], [""], ["configmaps"])
    current = {**default, "rules": [default["rules"][0], extra]}
    out = reconciled(current, default)
    assert out is not None
    rules = [Rule.from_dict(x) for x in out["rules"]]
    assert Rule.from_dict(extra) in rules
    assert not uncovered(rules, [Rule.from_dict(x) for x in default["rules"]])
    assert reconciled(out, default) is None  # reconciled once, settled


def test_reconcile_respects_autoupdate_false():
    default = _default("system:node-proxier")
    meta = {**default["metadata"], "annotations": {AUTOUPDATE: "false"}}
    assert reconciled({**default, "metadata": meta, "rules": []}, default) is None


def test_reconcile_aggregated_role_and_binding():
    admin = _default("admin")
    current = {
        **admin,
        "aggregationRule": {"clusterRoleSelectors": []},
        "rules": [r(["get"], [""], ["x"])],
    }
    out = reconciled(current, admin)
    assert out is not None
    assert out["aggregationRule"] == admin["aggregationRule"]
    assert out["rules"] == current["rules"]  # the aggregation controller owns them
    crb = next(o for o in default_objects() if o["kind"] == "ClusterRoleBinding")
    out = reconciled({**crb, "subjects": [user("someone")]}, crb)
    assert out is not None and out["subjects"] == [user("someone"), *crb["subjects"]]
    assert reconciled(crb, crb) is None

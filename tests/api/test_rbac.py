"""RBAC and node authorization enforced by a real API server (static tokens, Node,RBAC)."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from apiserver.auth.bootstrap import AUTOUPDATE
from apiserver.auth.rbac import Rule, uncovered
from machinery.kubeconfig import write_kubeconfig
from tests.conftest import ApiServerProcess, start_apiserver

TOKENS = {"admin": "admin-token", "alice": "alice-token", "n1": "n1-token"}
AGENT = "agent-1"
RBAC = "/apis/rbac.authorization.k8s.io/v1"
AUTHZ = "/apis/authorization.k8s.io/v1"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServerProcess]:
    d: Path = tmp_path_factory.mktemp("rbac")
    tokens = d / "tokens.csv"
    tokens.write_text(
        'admin-token,admin,1,"system:masters"\n'
        "alice-token,alice,2\n"
        'n1-token,system:node:n1,3,"system:nodes"\n'
        f'agent-token,system:node:{AGENT},4,"system:nodes"\n'
    )
    proc = start_apiserver(
        d, extra=["--token-auth-file", str(tokens), "--authorization-mode", "Node,RBAC"]
    )
    yield proc
    proc.stop()


def client(server: ApiServerProcess, who: str) -> httpx.Client:
    return httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {TOKENS[who]}"}, timeout=10
    )


@pytest.fixture(scope="module")
def admin(server) -> Iterator[httpx.Client]:
    with client(server, "admin") as c:
        yield c


@pytest.fixture(scope="module")
def alice(server) -> Iterator[httpx.Client]:
    with client(server, "alice") as c:
        yield c


@pytest.fixture
def namespaces(admin) -> tuple[str, str]:
    names = tuple(f"r-{uuid.uuid4().hex[:8]}" for _ in range(2))
    for ns in names:
        r = admin.post("/api/v1/namespaces", json={"metadata": {"name": ns}})
        assert r.status_code == 201, r.text
    return names  # type: ignore[return-value]


def bind(admin: httpx.Client, ns: str, role: str, user: str = "alice") -> None:
    body = {
        "metadata": {"name": f"{user}-{role}"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": [{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": user}],
    }
    r = admin.post(f"{RBAC}/namespaces/{ns}/rolebindings", json=body)
    assert r.status_code == 201, r.text


def cm(name: str) -> dict:
    return {"metadata": {"name": name}, "data": {"k": "v"}}


def test_edit_in_one_namespace_only(admin, alice, namespaces):
    mine, other = namespaces
    assert alice.post(f"/api/v1/namespaces/{mine}/configmaps", json=cm("x")).status_code == 403
    bind(admin, mine, "edit")
    assert alice.post(f"/api/v1/namespaces/{mine}/configmaps", json=cm("x")).status_code == 201
    assert alice.get(f"/api/v1/namespaces/{mine}/secrets").status_code == 200
    denied = alice.post(f"/api/v1/namespaces/{other}/configmaps", json=cm("x"))
    assert denied.status_code == 403
    status = denied.json()
    assert status["reason"] == "Forbidden"
    assert status["message"] == (
        'configmaps is forbidden: User "alice" cannot create resource "configmaps" in API group '
        f'"" in the namespace "{other}"'
    )
    assert alice.get("/api/v1/secrets").status_code == 403  # not cluster-wide
    # edit holds no RBAC rights: no roles, no bindings
    assert alice.get(f"{RBAC}/namespaces/{mine}/roles").status_code == 403


def test_escalation_is_refused(admin, alice, namespaces):
    mine, _ = namespaces
    bind(admin, mine, "admin")
    role = {"metadata": {"name": "reader"}, "rules": [_rule(["get"], ["pods"])]}
    assert alice.post(f"{RBAC}/namespaces/{mine}/roles", json=role).status_code == 201
    greedy = {"metadata": {"name": "greedy"}, "rules": [_rule(["*"], ["*"])]}
    r = alice.post(f"{RBAC}/namespaces/{mine}/roles", json=greedy)
    assert r.status_code == 403, r.text
    assert "attempting to grant RBAC permissions not currently held" in r.json()["message"]
    takeover = {
        "metadata": {"name": "takeover"},
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": "cluster-admin",
        },
        "subjects": [{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "alice"}],
    }
    r = alice.post(f"{RBAC}/namespaces/{mine}/rolebindings", json=takeover)
    assert r.status_code == 403, r.text
    # binding a role she holds in full is fine
    takeover["roleRef"]["name"] = "view"  # type: ignore[index]
    assert alice.post(f"{RBAC}/namespaces/{mine}/rolebindings", json=takeover).status_code == 201


def _rule(verbs: list[str], resources: list[str]) -> dict:
    return {"verbs": verbs, "apiGroups": [""], "resources": resources}


def test_self_subject_reviews(admin, alice, namespaces):
    mine, other = namespaces
    bind(admin, mine, "view")

    def can(verb: str, resource: str, ns: str) -> dict:
        body = {
            "spec": {"resourceAttributes": {"verb": verb, "resource": resource, "namespace": ns}}
        }
        r = alice.post(f"{AUTHZ}/selfsubjectaccessreviews", json=body)
        assert r.status_code == 201, r.text
        return r.json()["status"]

    yes = can("list", "pods", mine)
    assert yes["allowed"] is True
    assert 'RoleBinding "alice-view/' in yes["reason"]
    assert can("delete", "pods", mine)["allowed"] is False
    assert can("list", "pods", other)["allowed"] is False

    r = alice.post(f"{AUTHZ}/selfsubjectrulesreviews", json={"spec": {"namespace": mine}})
    rules = r.json()["status"]["resourceRules"]
    assert any("pods" in x["resources"] and "list" in x["verbs"] for x in rules)
    assert any(
        "selfsubjectaccessreviews" in x["resources"] for x in rules
    )  # system:basic-user, bound to system:authenticated

    who = alice.post("/apis/authentication.k8s.io/v1/selfsubjectreviews", json={}).json()
    assert who["status"]["userInfo"]["username"] == "alice"
    assert "system:authenticated" in who["status"]["userInfo"]["groups"]

    # SubjectAccessReview asks about someone else; alice may not
    sar = {"spec": {"user": "alice", "resourceAttributes": {"verb": "list", "resource": "pods"}}}
    assert alice.post(f"{AUTHZ}/subjectaccessreviews", json=sar).status_code == 403
    r = admin.post(f"{AUTHZ}/namespaces/{mine}/localsubjectaccessreviews", json=sar)
    assert r.status_code == 201, r.text
    assert r.json()["status"]["allowed"] is True


def test_node_writes_only_its_own_objects(server, admin):
    for name in ("n1", "n2"):
        admin.post("/api/v1/nodes", json={"metadata": {"name": name}})
    with client(server, "n1") as n1:
        own = n1.patch(
            "/api/v1/nodes/n1/status",
            json={"status": {"conditions": [{"type": "Ready", "status": "True"}]}},
            headers={"Content-Type": "application/merge-patch+json"},
        )
        assert own.status_code == 200, own.text
        other = n1.patch(
            "/api/v1/nodes/n2/status",
            json={"status": {"conditions": [{"type": "Ready", "status": "False"}]}},
            headers={"Content-Type": "application/merge-patch+json"},
        )
        assert other.status_code == 403
        assert other.json()["reason"] == "Forbidden"
        assert n1.get("/api/v1/nodes").status_code == 200
        # NodeRestriction: creating another node's Node or Lease is refused at admission
        r = n1.post("/api/v1/nodes", json={"metadata": {"name": "n3"}})
        assert r.status_code == 403
        assert 'node "n1" is not allowed to modify node "n3"' in r.json()["message"]
        lease = {"metadata": {"name": "n2"}, "spec": {"holderIdentity": "n2"}}
        path = "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases"
        assert n1.post(path, json=lease).status_code == 403
        lease["metadata"]["name"] = "n1"
        assert n1.post(path, json=lease).status_code == 201
        assert n1.get("/api/v1/namespaces/default/secrets").status_code == 403


def test_default_roles_are_served_and_aggregated(admin):
    names = {i["metadata"]["name"] for i in admin.get(f"{RBAC}/clusterroles").json()["items"]}
    assert {"cluster-admin", "admin", "edit", "view", "system:discovery"} <= names
    crb = admin.get(f"{RBAC}/clusterrolebindings/cluster-admin").json()
    assert crb["subjects"] == [
        {"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": "system:masters"}
    ]
    deadline = time.monotonic() + 10
    while True:  # the aggregation controller fills in admin's rules after start
        admin_role = admin.get(f"{RBAC}/clusterroles/admin").json()
        if admin_role.get("rules") or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    resources = {r for rule in admin_role["rules"] for r in rule.get("resources", [])}
    assert {"pods", "deployments", "rolebindings", "secrets"} <= resources
    assert admin_role["metadata"]["annotations"]["rbac.authorization.kubernetes.io/autoupdate"]


def _wait(what: str, probe, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = probe()
        if got:
            return got
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_node_agent_runs_with_node_credentials(server, admin, tmp_path):
    """A node agent (fake runtime) authenticated as system:node:NAME registers, heartbeats,
    reads the configmap and secret its pod uses, reports the pod's status and confirms its
    deletion: every request it makes is allowed by the node authorizer."""
    ns = f"r-{uuid.uuid4().hex[:8]}"
    assert admin.post("/api/v1/namespaces", json={"metadata": {"name": ns}}).status_code == 201
    admin.post(f"/api/v1/namespaces/{ns}/configmaps", json=cm("settings"))
    secret = {"metadata": {"name": "creds"}, "stringData": {"password": "x"}}
    assert admin.post(f"/api/v1/namespaces/{ns}/secrets", json=secret).status_code == 201
    config = tmp_path / "kubeconfig"
    write_kubeconfig(str(config), server.url, token="agent-token")
    log = open(tmp_path / "agent.log", "ab")  # noqa: SIM115 - lives as long as the process
    args = ["--kubeconfig", str(config), "--runtime", "fake", "--node-name", AGENT, "--port", "0"]
    args += ["--log-root", str(tmp_path / "pods"), "--root-dir", str(tmp_path / "root")]
    agent = subprocess.Popen(
        [sys.executable, "-m", "kubelet.main", *args, "--lease-period", "1", "-v"],
        stdout=log,
        stderr=log,
    )
    try:
        _wait(
            "the Lease",
            lambda: (
                admin.get(
                    f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{AGENT}"
                ).status_code
                == 200
            ),
        )
        pod = {
            "metadata": {"name": "app"},
            "spec": {
                "nodeName": AGENT,
                "containers": [
                    {
                        "name": "c",
                        "image": "busybox:1.35",
                        "env": [
                            {
                                "name": "K",
                                "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "k"}},
                            }
                        ],
                        "envFrom": [{"secretRef": {"name": "creds"}}],
                    }
                ],
            },
        }
        assert admin.post(f"/api/v1/namespaces/{ns}/pods", json=pod).status_code == 201
        path = f"/api/v1/namespaces/{ns}/pods/app"
        _wait(
            "the pod to run",
            lambda: (admin.get(path).json().get("status") or {}).get("phase") == "Running",
        )
        node = admin.get(f"/api/v1/nodes/{AGENT}").json()
        ready = [c for c in node["status"]["conditions"] if c["type"] == "Ready"]
        assert ready[0]["status"] == "True"
        assert admin.delete(path).status_code == 200
        _wait("the agent to confirm the deletion", lambda: admin.get(path).status_code == 404)
    finally:
        agent.terminate()
        agent.wait(10)
        log.close()
    text = (tmp_path / "agent.log").read_text()
    assert " 403 Forbidden" not in text and " 401 Unauthorized" not in text, text[-3000:]
    assert "PATCH /api/v1/namespaces/" in text and "/pods/app/status -> 200" in text  # logged


def test_default_policy_is_reconciled_at_restart(tmp_path):
    """A default role that lost a rule gets it back when the API server starts again, unless
    its autoupdate annotation is "false"; what an administrator added stays."""
    url = f"{RBAC}/clusterroles/system:node-proxier"
    first = start_apiserver(tmp_path)
    try:
        with httpx.Client(base_url=first.url) as c:
            role = c.get(url).json()
            original = role["rules"]
            role["rules"] = [*original[1:], _rule(["get"], ["configmaps"])]
            assert c.put(url, json=role).status_code == 200
            pinned = c.get(f"{RBAC}/clusterroles/system:basic-user").json()
            pinned["metadata"]["annotations"][AUTOUPDATE] = "false"
            pinned["rules"] = []
            assert c.put(f"{RBAC}/clusterroles/system:basic-user", json=pinned).status_code == 200
    finally:
        first.stop()
    second = start_apiserver(tmp_path)
    try:
        with httpx.Client(base_url=second.url) as c:
            rules = c.get(url).json()["rules"]
            assert _rule(["get"], ["configmaps"]) in rules
            held = [Rule.from_dict(r) for r in rules]
            assert not uncovered(held, [Rule.from_dict(o) for o in original])
            assert c.get(f"{RBAC}/clusterroles/system:basic-user").json().get("rules") in (None, [])
    finally:
        second.stop()

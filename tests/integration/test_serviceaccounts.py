"""In-cluster access against a real API server and the controller-manager: every namespace gets
its ``default`` ServiceAccount and ``kube-root-ca.crt``; pods get the API access volume; a
TokenRequest bound to the pod authenticates as the ServiceAccount.

The API server serves plain HTTP with ServiceAccount tokens on (``--service-account-key-file``),
static tokens for the test's admin and RBAC; the controller-manager gets ``--root-ca-file``.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from apiserver.serviceaccount_admission import MOUNT_PATH
from controllers.manager import ControllerManager, parse_args, root_ca
from kubelet.satoken import Token, TokenManager
from machinery import errors
from machinery.client import AsyncClient
from machinery.kinds import lookup
from machinery.kubeconfig import write_kubeconfig
from machinery.pki import Pki
from tests.conftest import ApiServerProcess, start_apiserver

NS, SA, CM, POD = (lookup(p) for p in ("namespaces", "serviceaccounts", "configmaps", "pods"))
ADMIN_TOKEN = "admin-token"
NODE, NODE_TOKEN = "n1", "node-token"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki(tmp_path_factory.mktemp("pki")).ensure()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[ApiServerProcess]:
    d = tmp_path_factory.mktemp("sa")
    (d / "tokens.csv").write_text(
        f'{ADMIN_TOKEN},admin,1,"system:masters"\n{NODE_TOKEN},system:node:{NODE},2,"system:nodes"\n'
    )
    extra = ["--token-auth-file", str(d / "tokens.csv"), "--authorization-mode", "Node,RBAC",
             "--service-account-key-file", str(pki.sa_key)]  # fmt: skip
    proc = start_apiserver(d, extra=extra)
    yield proc
    proc.stop()


@dataclass
class Env:
    client: AsyncClient
    url: str
    ns: str
    ca: bytes


async def eventually(what: str, check, timeout: float = 20.0):  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout
    last = None
    while asyncio.get_running_loop().time() < deadline:
        try:
            last = await check()
        except errors.NotFound:
            last = None
        if last:
            return last
        await asyncio.sleep(0.05)
    raise AssertionError(f"{what}: not within {timeout} s (last: {last!r})")


@pytest.fixture
async def env(server: ApiServerProcess, pki: Pki) -> AsyncIterator[Env]:
    client = AsyncClient(server.url, token=ADMIN_TOKEN)
    args = parse_args(["--server", server.url, "--root-ca-file", str(pki.ca.cert)])
    manager = ControllerManager(
        client,
        workers=2,
        controllers=["serviceaccount", "root-ca-cert-publisher"],
        leader_elect=False,
        resync_period=None,
        options={"root-ca-cert-publisher": {"root_ca": root_ca(args)}},
    )
    task = asyncio.create_task(manager.run())

    async def synced() -> bool:
        if task.done():
            task.result()
        return manager.synced

    await eventually("caches synced", synced)
    ns = f"sa-{uuid.uuid4().hex[:8]}"
    await client.create(NS, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    try:
        yield Env(client, server.url, ns, pki.ca.cert.read_bytes())
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await client.aclose()


def _pod(name: str, **spec: object) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "c", "image": "busybox"}], **spec},
    }


async def test_namespace_gets_default_account_and_root_ca(env: Env) -> None:
    sa = await eventually("default ServiceAccount", lambda: env.client.get(SA, "default", env.ns))
    cm = await eventually(
        "kube-root-ca.crt", lambda: env.client.get(CM, "kube-root-ca.crt", env.ns)
    )
    assert cm["data"] == {"ca.crt": env.ca.decode()}
    await env.client.delete(SA, "default", env.ns)

    async def recreated() -> dict | None:
        again = await env.client.get(SA, "default", env.ns)
        return again if again["metadata"]["uid"] != sa["metadata"]["uid"] else None

    await eventually("default ServiceAccount recreated", recreated)
    await env.client.patch(CM, "kube-root-ca.crt", {"data": {"ca.crt": "x"}}, env.ns)

    async def restored() -> bool:
        got = await env.client.get(CM, "kube-root-ca.crt", env.ns)
        return got["data"] == {"ca.crt": env.ca.decode()}

    await eventually("kube-root-ca.crt put back", restored)


async def test_pod_gets_the_volume_and_its_token_authenticates(env: Env) -> None:
    await eventually("default ServiceAccount", lambda: env.client.get(SA, "default", env.ns))
    pod = await env.client.create(POD, _pod("app"), env.ns)
    spec = pod["spec"]
    assert spec["serviceAccountName"] == "default"
    [volume] = spec["volumes"]
    assert volume["name"].startswith("kube-api-access-")
    assert [s for source in volume["projected"]["sources"] for s in source] == [
        "serviceAccountToken",
        "configMap",
        "downwardAPI",
    ]
    assert spec["containers"][0]["volumeMounts"] == [
        {"name": volume["name"], "readOnly": True, "mountPath": MOUNT_PATH}
    ]
    off = await env.client.create(POD, _pod("off", automountServiceAccountToken=False), env.ns)
    assert not off["spec"].get("volumes")

    request = {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "spec": {
            "expirationSeconds": 3607,
            "boundObjectRef": {
                "apiVersion": "v1",
                "kind": "Pod",
                "name": "app",
                "uid": pod["metadata"]["uid"],
            },
        },
    }
    answer = await env.client.create(SA, request, env.ns, subresource="token", name="default")
    token = answer["status"]["token"]
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=env.url, headers=headers, timeout=10) as c:
        r = await c.get(f"/api/v1/namespaces/{env.ns}/pods")
        assert r.status_code == 403, r.text
        assert f"system:serviceaccount:{env.ns}:default" in r.json()["message"]
        await env.client.delete(POD, "app", env.ns, grace_period_seconds=0)

        async def revoked() -> bool:
            return (await c.get(f"/api/v1/namespaces/{env.ns}/pods")).status_code == 401

        await eventually("the token dies with its pod", revoked)


async def test_named_missing_account_is_refused(env: Env) -> None:
    with pytest.raises(errors.Forbidden) as caught:
        await env.client.create(POD, _pod("lost", serviceAccountName="robot"), env.ns)
    assert caught.value.message == (
        f'pods "lost" is forbidden: error looking up service account {env.ns}/robot: '
        'serviceaccount "robot" not found'
    )


async def test_node_agent_fetches_tokens_only_for_accounts_its_pods_use(env: Env) -> None:
    await eventually("default ServiceAccount", lambda: env.client.get(SA, "default", env.ns))
    mine = await env.client.create(POD, _pod("mine", nodeName=NODE), env.ns)
    robot = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "robot"}}
    await env.client.create(SA, robot, env.ns)
    other = await env.client.create(
        POD, _pod("other", nodeName="n2", serviceAccountName="robot"), env.ns
    )
    node = AsyncClient(env.url, token=NODE_TOKEN)
    try:
        got = await TokenManager().fetch(node, mine)
        [token] = got.values()
        assert isinstance(token, Token) and token.expires - token.issued == 3607
        [refused] = (await TokenManager().fetch(node, other)).values()
        assert isinstance(refused, str) and "forbidden" in refused
    finally:
        await node.aclose()


def test_root_ca_falls_back_to_the_kubeconfig(tmp_path: Path, pki: Pki) -> None:
    kc = tmp_path / "kubeconfig"
    write_kubeconfig(str(kc), "https://127.0.0.1:1", ca_data=pki.ca.cert.read_bytes())
    assert root_ca(parse_args(["--kubeconfig", str(kc)])) == pki.ca.cert.read_bytes()
    assert root_ca(parse_args(["--server", "http://127.0.0.1:1"])) is None

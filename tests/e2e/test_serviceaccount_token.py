"""A pod on containerd uses its ServiceAccount the way ``load_incluster_config()`` does.

An API server of this module's own advertises 198.51.100.17 (TEST-NET-2 on a dummy interface,
so nothing leaves the machine) and issues ServiceAccount tokens, with RBAC; the iptables proxy
maps the ``kubernetes`` Service (10.96.0.1:443) to it; the controller-manager (ServiceAccount
controller and root CA publisher, ``--root-ca-file``) gives the namespace its ``default``
ServiceAccount and ``kube-root-ca.crt``; admission gives the pod its ``kube-api-access-*``
volume and the node agent fills it with a TokenRequest bound to the pod. Inside the pod, busybox
reads ``/var/run/secrets/kubernetes.io/serviceaccount/{token,ca.crt,namespace}`` and calls
``$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT`` with the token: 200 for what a RoleBinding
lets the ServiceAccount do, 403 for what it does not.

The server speaks plain HTTP: busybox's built-in TLS (the only client in the test image) fails
the handshake with the API server (alert 40, handshake_failure; the same against ``openssl
s_server`` with the cluster's ECDSA certificate), so ``--secure`` cannot be used here. The token,
RBAC, the Service path and the published CA are what this test checks; a machine where another
cluster's service proxy already owns 10.96.0.1:443 skips it (its pods would reach that server).
"""

from __future__ import annotations

import asyncio
import secrets
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest

from controllers.manager import ControllerManager, parse_args, root_ca
from kubelet.dns import bind_address, unbind_address
from kubelet.proxy.iptables import IptablesBackend, IptablesConfig
from kubelet.proxy.proxier import Proxier
from machinery.client import AsyncClient
from machinery.informer import InformerFactory
from machinery.kinds import lookup
from machinery.pki import Pki
from tests.conftest import ApiServerProcess, start_apiserver
from tests.e2e.conftest import ContainerdRuntime
from tests.e2e.kubelet_env import (
    container,
    container_id,
    delete_all_pods,
    eventually,
    pod,
    running,
    start_node,
)

pytestmark = pytest.mark.e2e

NS, SA, CM, POD = (lookup(p) for p in ("namespaces", "serviceaccounts", "configmaps", "pods"))
ROLES, BINDINGS = lookup("roles"), lookup("rolebindings")
ADVERTISE = "198.51.100.17"
ADMIN_TOKEN = "admin-token"
SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


@dataclass
class Api:
    server: ApiServerProcess
    ca: Path


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    pki = Pki(tmp_path / "pki").ensure()
    (tmp_path / "tokens.csv").write_text(f'{ADMIN_TOKEN},admin,1,"system:masters"\n')
    iface = f"tugsa{secrets.token_hex(2)}"
    created = bind_address(ADVERTISE, iface)
    try:
        server = start_apiserver(
            tmp_path,
            extra=["--advertise-address", ADVERTISE,
                   "--token-auth-file", str(tmp_path / "tokens.csv"),
                   "--service-account-key-file", str(pki.sa_key),
                   "--authorization-mode", "RBAC"],
        )  # fmt: skip
        try:
            yield Api(server, pki.ca.cert)
        finally:
            server.stop()
    finally:
        if created:
            unbind_address(iface)


def kubernetes_service_owner() -> str | None:
    """The chain prefix of the first service proxy in PREROUTING that handles 10.96.0.1:443:
    on a machine shared by several clusters, that proxy gets the pods' traffic."""
    rules = subprocess.run(
        ["iptables-save", "-t", "nat"], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    claimed = {
        r.split()[1].removesuffix("-SERVICES")
        for r in rules
        if "-d 10.96.0.1/32" in r and "--dport 443" in r and r.split()[1].endswith("-SERVICES")
    }
    for r in rules:
        if r.startswith("-A PREROUTING") and "-j " in r:
            target = r.split("-j ", 1)[1].split()[0].removesuffix("-SERVICES")
            if target in claimed:
                return target
    return None


def _pod_reader(ns: str) -> tuple[dict, dict]:
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": "pod-reader", "namespace": ns},
        "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}],
    }
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "default-reads-pods", "namespace": ns},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "pod-reader"},
        "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": ns}],
    }
    return role, binding


async def test_pod_calls_the_api_server_with_its_service_account_token(
    api: Api, containerd_runtime: ContainerdRuntime
) -> None:
    client = AsyncClient(api.server.url, token=ADMIN_TOKEN)
    args = parse_args(["--server", api.server.url, "--root-ca-file", str(api.ca)])
    manager = ControllerManager(
        client,
        controllers=["serviceaccount", "root-ca-cert-publisher"],
        leader_elect=False,
        resync_period=None,
        options={"root-ca-cert-publisher": {"root_ca": root_ca(args)}},
    )
    node = await start_node(client, containerd_runtime, prefix="satok")
    factory = InformerFactory(client)
    prefix = "TS" + secrets.token_hex(2).upper()
    backend = IptablesBackend(
        IptablesConfig(prefix=prefix, localnet_interfaces=(containerd_runtime.bridge,))
    )
    proxier = Proxier(factory, backend, min_sync_period=0.02)
    await factory.start()
    assert await factory.wait_synced(10)
    tasks = [asyncio.create_task(proxier.run()), asyncio.create_task(manager.run())]
    ns = f"satok-{uuid.uuid4().hex[:6]}"
    try:
        await client.create(NS, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
        await eventually("default ServiceAccount", lambda: client.get(SA, "default", ns), 30)
        await eventually("kube-root-ca.crt", lambda: client.get(CM, "kube-root-ca.crt", ns), 30)
        role, binding = _pod_reader(ns)
        await client.create(ROLES, role, ns)
        await client.create(BINDINGS, binding, ns)
        body = pod(
            "incluster",
            node.name,
            [container("c", containerd_runtime.busybox_image, command=["sleep", "3600"])],
        )
        body["metadata"]["namespace"] = ns
        created = await client.create(POD, body, ns)
        assert created["spec"]["volumes"][0]["name"].startswith("kube-api-access-")
        await eventually("pod running", lambda: running(client, "incluster", ns), 90)
        obj = await client.get(POD, "incluster", ns)
        assert node.runtime is not None

        async def sh(script: str) -> tuple[int, str, str]:
            assert node.runtime is not None
            res = await node.runtime.exec_sync(container_id(obj), ["sh", "-c", script], timeout=15)
            return res.exit_code, res.stdout.decode(), res.stderr.decode()

        owner = kubernetes_service_owner()
        if owner != prefix:
            pytest.skip(f"another service proxy on this machine ({owner}) owns 10.96.0.1:443")
        code, out, _ = await sh(f"cat {SA_DIR}/namespace")
        assert (code, out) == (0, ns)
        code, out, _ = await sh(f"cat {SA_DIR}/ca.crt")
        assert out == api.ca.read_text()
        code, out, _ = await sh(f"cut -d. -f1 {SA_DIR}/token | wc -c")
        assert code == 0 and int(out) > 10  # a JWT header
        call = (
            "wget -q -O - "
            f'--header "Authorization: Bearer $(cat {SA_DIR}/token)" '
            "http://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT"
        )

        said: list[str] = []

        async def pods_listed() -> dict | None:
            code, out, err = await sh(f"{call}/api/v1/namespaces/$(cat {SA_DIR}/namespace)/pods")
            said.append(err)
            return orjson.loads(out) if code == 0 else None

        try:
            listed = await eventually("GET pods with the token (200)", pods_listed, 30)
        except AssertionError as e:
            raise AssertionError(f"{e}; wget said {said[-1:]}") from None
        assert listed["kind"] == "PodList"
        assert [p["metadata"]["name"] for p in listed["items"]] == ["incluster"]
        code, _, err = await sh(f"{call}/api/v1/namespaces/{ns}/secrets")
        assert code != 0 and "403" in err, err
    finally:
        try:
            await delete_all_pods(client, node.name)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await factory.stop()
            await node.stop()
            await client.aclose()

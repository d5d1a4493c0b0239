"""``--default-not-ready-toleration-seconds`` and ``--default-unreachable-toleration-seconds``:
the tolerations the API server adds to pods that have none for those taints (Kubernetes'
DefaultTolerationSeconds admission)."""

from __future__ import annotations

import httpx

from tests.conftest import start_apiserver

PODS = "/api/v1/namespaces/default/pods"


def _pod(name: str, **spec: object) -> dict:
    containers = [{"name": "c", "image": "busybox:1.36"}]
    return {"metadata": {"name": name}, "spec": {"containers": containers, **spec}}


def test_flags_set_the_seconds_of_the_added_tolerations(tmp_path):
    flags = ["--default-not-ready-toleration-seconds", "60"]
    flags += ["--default-unreachable-toleration-seconds", "7"]
    server = start_apiserver(tmp_path, extra=flags)
    try:
        with httpx.Client(base_url=server.url, timeout=10) as c:
            r = c.post(PODS, json=_pod("plain"))
            assert r.status_code == 201, r.text
            added = {t["key"]: t for t in r.json()["spec"]["tolerations"]}
            assert added == {
                "node.kubernetes.io/not-ready": {
                    "key": "node.kubernetes.io/not-ready",
                    "operator": "Exists",
                    "effect": "NoExecute",
                    "tolerationSeconds": 60,
                },
                "node.kubernetes.io/unreachable": {
                    "key": "node.kubernetes.io/unreachable",
                    "operator": "Exists",
                    "effect": "NoExecute",
                    "tolerationSeconds": 7,
                },
            }
            own = {
                "key": "node.kubernetes.io/unreachable",
                "operator": "Exists",
                "effect": "NoExecute",
                "tolerationSeconds": 1,
            }
            r = c.post(PODS, json=_pod("own", tolerations=[own]))
            assert r.status_code == 201, r.text
            got = r.json()["spec"]["tolerations"]
            assert own in got  # a pod's own toleration is left alone
            assert [t["tolerationSeconds"] for t in got] == [1, 60]
    finally:
        server.stop()

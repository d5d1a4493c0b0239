"""A kopf operator run with ``kopf run --standalone`` against tugboat: handlers fire, the
finalizer is added and removed, status is patched, events are posted."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.compat
GROUP = "kopf.tugboat.dev"


def wait_for(fn, timeout: float = 60, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = fn()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def greeting_crd(api):
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"greetings.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {"plural": "greetings", "singular": "greeting", "kind": "Greeting"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "x-kubernetes-preserve-unknown-fields": True,
                        }
                    },
                }
            ],
        },
    }
    r = httpx.post(f"{api.url}/apis/apiextensions.k8s.io/v1/customresourcedefinitions", json=crd)
    assert r.status_code in (201, 409)


def test_kopf_operator_handles_lifecycle(api, greeting_crd, tmp_path):
    ns = f"kopf-{uuid.uuid4().hex[:6]}"
    httpx.post(f"{api.url}/api/v1/namespaces", json={"metadata": {"name": ns}})
    op = Path(__file__).with_name("kopf_operator.py")
    log = open(tmp_path / "kopf.log", "w")  # noqa: SIM115 - closed in finally
    proc = subprocess.Popen(
        [sys.executable, "-m", "kopf", "run", "--standalone", "-n", ns, str(op)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "KUBECONFIG": api.kubeconfig},
    )
    base = f"{api.url}/apis/{GROUP}/v1/namespaces/{ns}/greetings"
    try:
        r = httpx.post(
            base,
            json={
                "apiVersion": f"{GROUP}/v1",
                "kind": "Greeting",
                "metadata": {"name": "g1"},
                "spec": {"who": "world"},
            },
        )
        assert r.status_code == 201

        def status_message():
            obj = httpx.get(f"{base}/g1").json()
            return (obj.get("status") or {}).get("created", {}).get("message")

        assert wait_for(status_message, what="status from the create handler") == "hello world"
        obj = httpx.get(f"{base}/g1").json()
        assert any(f.startswith("kopf.zalando.org") for f in obj["metadata"]["finalizers"])

        def greeted():
            evs = httpx.get(
                f"{api.url}/api/v1/namespaces/{ns}/events",
                params={"fieldSelector": "involvedObject.name=g1"},
            ).json()["items"]
            return [e for e in evs if e.get("reason") == "Greeted"]

        assert wait_for(greeted, what="the Greeted event")[0]["message"] == "hello world"

        httpx.patch(
            f"{base}/g1",
            json={"spec": {"who": "again"}},
            headers={"Content-Type": "application/merge-patch+json"},
        )
        wait_for(
            lambda: (
                (httpx.get(f"{base}/g1").json().get("status") or {})
                .get("updated", {})
                .get("message")
                == "hello again again"
            ),
            what="update handler",
        )

        httpx.delete(f"{base}/g1")
        wait_for(
            lambda: httpx.get(f"{base}/g1").status_code == 404,
            what="deletion after the finalizer is removed",
        )
        cm = httpx.get(f"{api.url}/api/v1/namespaces/{ns}/configmaps/goodbye-g1")
        assert cm.status_code == 200 and cm.json()["data"] == {"who": "g1"}
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
    assert proc.returncode is not None

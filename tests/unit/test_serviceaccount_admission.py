"""ServiceAccount admission: defaulting, the missing-account rule and the API access volume."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from apiserver.serviceaccount_admission import (
    MOUNT_PATH,
    ServiceAccountAdmission,
    api_access_volume,
    mount_token,
    should_automount,
)
from machinery import errors

Obj = dict[str, Any]


@dataclass
class Entry:
    obj: Obj


class FakeRegistry:
    def __init__(self, *accounts: Obj) -> None:
        self.accounts = {(a["metadata"]["namespace"], a["metadata"]["name"]): a for a in accounts}

    def find(self, rt: Any, namespace: str, name: str) -> Entry | None:
        assert rt.plural == "serviceaccounts"
        found = self.accounts.get((namespace, name))
        return Entry(found) if found is not None else None


def sa(name: str = "default", namespace: str = "team", **fields: Any) -> Obj:
    return {"metadata": {"name": name, "namespace": namespace}, **fields}


def pod(**spec: Any) -> Obj:
    base: Obj = {
        "containers": [{"name": "app", "image": "busybox"}],
        "initContainers": [{"name": "init", "image": "busybox"}],
    }
    return {"metadata": {"name": "p", "namespace": "team"}, "spec": {**base, **spec}}


def admit(p: Obj, *accounts: Obj, tokens: bool = True) -> Obj:
    ServiceAccountAdmission(FakeRegistry(*accounts), lambda: tokens).admit(p)
    return p


def test_volume_has_kubernetes_shape() -> None:
    p = admit(pod(), sa())
    spec = p["spec"]
    assert spec["serviceAccountName"] == "default" and spec["serviceAccount"] == "default"
    [volume] = spec["volumes"]
    name = volume["name"]
    assert name.startswith("kube-api-access-") and len(name) == len("kube-api-access-") + 5
    assert volume == api_access_volume(name)
    sources = volume["projected"]["sources"]
    assert volume["projected"]["defaultMode"] == 420
    assert sources[0] == {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}}
    assert sources[1] == {
        "configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}
    }
    assert sources[2]["downwardAPI"]["items"] == [
        {"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}
    ]
    mount = {"name": name, "readOnly": True, "mountPath": MOUNT_PATH}
    for kind in ("containers", "initContainers"):
        assert spec[kind][0]["volumeMounts"] == [mount], kind


@pytest.mark.parametrize(
    ("pod_says", "sa_says", "mounted"),
    [
        (None, None, True),
        (None, False, False),
        (True, False, True),
        (False, True, False),
        (False, None, False),
    ],
    ids=["default", "sa-false", "pod-true-wins", "pod-false-wins", "pod-false"],
)
def test_automount_pod_setting_wins(pod_says: Any, sa_says: Any, mounted: bool) -> None:
    p = pod() if pod_says is None else pod(automountServiceAccountToken=pod_says)
    account = sa() if sa_says is None else sa(automountServiceAccountToken=sa_says)
    assert should_automount(account, p) is mounted
    admit(p, account)
    assert bool(p["spec"].get("volumes")) is mounted


def test_named_missing_account_is_forbidden() -> None:
    with pytest.raises(errors.Forbidden) as caught:
        admit(pod(serviceAccountName="robot"), sa())
    assert caught.value.code == 403
    assert caught.value.message == (
        'pods "p" is forbidden: error looking up service account team/robot: '
        'serviceaccount "robot" not found'
    )


@pytest.mark.parametrize("spec", [{}, {"serviceAccountName": "default"}], ids=["implicit", "named"])
def test_missing_default_is_admitted_without_volume(spec: dict) -> None:
    p = admit(pod(**spec))
    assert p["spec"]["serviceAccountName"] == "default"
    assert "volumes" not in p["spec"]
    assert "volumeMounts" not in p["spec"]["containers"][0]


def test_no_volume_when_the_server_issues_no_tokens() -> None:
    p = admit(pod(serviceAccountName="default"), sa(), tokens=False)
    assert "volumes" not in p["spec"]


def test_existing_mount_at_the_path_is_kept_and_other_containers_get_the_volume() -> None:
    own = {"name": "mine", "mountPath": MOUNT_PATH}
    p = pod(
        containers=[
            {"name": "a", "image": "x", "volumeMounts": [own]},
            {"name": "b", "image": "x"},
        ],
        volumes=[{"name": "mine", "emptyDir": {}}],
    )
    admit(p, sa())
    a, b = p["spec"]["containers"]
    assert a["volumeMounts"] == [own]
    assert b["volumeMounts"][0]["mountPath"] == MOUNT_PATH
    mine, token = p["spec"]["volumes"]
    assert mine["name"] == "mine" and token["name"] == b["volumeMounts"][0]["name"]


def test_every_container_already_mounted_adds_no_volume() -> None:
    own = {"name": "mine", "mountPath": MOUNT_PATH}
    p = pod(containers=[{"name": "a", "image": "x", "volumeMounts": [own]}], initContainers=[])
    admit(p, sa())
    assert "volumes" not in p["spec"]


def test_an_existing_api_access_volume_is_reused() -> None:
    p = pod(volumes=[api_access_volume("kube-api-access-abcde")])
    mount_token(p)
    assert [v["name"] for v in p["spec"]["volumes"]] == ["kube-api-access-abcde"]
    assert p["spec"]["containers"][0]["volumeMounts"][0]["name"] == "kube-api-access-abcde"


def test_mirror_pods_get_nothing_and_may_not_name_an_account() -> None:
    mirror = pod()
    mirror["metadata"]["annotations"] = {"kubernetes.io/config.mirror": "hash"}
    admit(mirror, sa())
    assert "volumes" not in mirror["spec"] and "serviceAccountName" not in mirror["spec"]
    mirror["spec"]["serviceAccountName"] = "default"
    with pytest.raises(errors.Forbidden):
        admit(mirror, sa())

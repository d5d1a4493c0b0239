"""Local-path provisioner: reconcile(key) against a fake client, stores refreshed by hand."""

from __future__ import annotations

from pathlib import Path

from controllers.localpath import ENSURE_CLASS, LocalPathProvisioner
from controllers.testing import FakeClient, store_of
from machinery.volumes import CLASSES, PVCS, PVS, SELECTED_NODE
from machinery.volumes import LOCAL_PATH_CLASS as CLASS_NAME


def claim(class_name: str | None = CLASS_NAME) -> dict:
    spec: dict = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}
    if class_name is not None:
        spec["storageClassName"] = class_name
    return {"metadata": {"name": "db", "namespace": "shop", "uid": "c-1"}, "spec": spec}


def provisioner(client: FakeClient, base: Path) -> LocalPathProvisioner:
    def refresh() -> None:
        ctl.claims = store_of(*client.all(PVCS))
        ctl.volumes = store_of(*client.all(PVS))

    ctl = LocalPathProvisioner(client, claims=store_of(), volumes=store_of(), base_dir=str(base))
    ctl.refresh = refresh  # type: ignore[attr-defined]
    refresh()
    return ctl


async def converge(ctl: LocalPathProvisioner, key: str, rounds: int = 4) -> None:
    for _ in range(rounds):
        await ctl.reconcile(key)
        ctl.refresh()  # type: ignore[attr-defined]


async def test_binds_a_claim_to_a_new_host_path_volume(tmp_path: Path) -> None:
    client = FakeClient((PVCS, claim()))
    ctl = provisioner(client, tmp_path)
    await converge(ctl, "shop/db")
    pv = client.stored(PVS, None, "pvc-c-1")
    assert pv is not None
    assert pv["spec"]["hostPath"] == {
        "path": str(tmp_path / "pvc-c-1_shop_db"),
        "type": "DirectoryOrCreate",
    }
    assert pv["spec"]["claimRef"]["uid"] == "c-1"
    assert pv["spec"]["capacity"] == {"storage": "1Gi"}
    assert pv["status"]["phase"] == "Bound"
    pvc = client.stored(PVCS, "shop", "db")
    assert pvc["spec"]["volumeName"] == "pvc-c-1"
    assert pvc["status"] == {
        "phase": "Bound",
        "accessModes": ["ReadWriteOnce"],
        "capacity": {"storage": "1Gi"},
    }
    writes = len(client.actions)
    await converge(ctl, "shop/db")
    assert len(client.actions) == writes  # idempotent once bound


async def test_claim_without_class_gets_the_default_and_other_classes_are_ignored(
    tmp_path: Path,
) -> None:
    client = FakeClient((PVCS, claim(None)))
    ctl = provisioner(client, tmp_path)
    await converge(ctl, "shop/db")
    assert client.stored(PVCS, "shop", "db")["spec"]["storageClassName"] == CLASS_NAME
    assert client.stored(PVS, None, "pvc-c-1") is not None

    other = FakeClient((PVCS, claim("fast-ssd")))
    ctl = provisioner(other, tmp_path)
    await converge(ctl, "shop/db")
    assert other.actions == []


async def test_deleted_claim_deletes_its_volume_and_data(tmp_path: Path) -> None:
    client = FakeClient((PVCS, claim()))
    ctl = provisioner(client, tmp_path)
    await converge(ctl, "shop/db")
    data = tmp_path / "pvc-c-1_shop_db"
    data.mkdir()
    (data / "file").write_text("x")
    await client.delete(PVCS, "db", "shop")
    ctl.refresh()  # type: ignore[attr-defined]
    await ctl.reconcile("shop/db")
    assert client.stored(PVS, None, "pvc-c-1") is None
    assert not data.exists()


async def test_storage_class_is_created_once(tmp_path: Path) -> None:
    client = FakeClient()
    ctl = provisioner(client, tmp_path)
    await ctl.reconcile(ENSURE_CLASS)
    await ctl.reconcile(ENSURE_CLASS)
    sc = client.stored(CLASSES, None, CLASS_NAME)
    assert sc["provisioner"] == "tugboat.io/local-path"
    assert sc["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"] == "true"
    assert sc["volumeBindingMode"] == "WaitForFirstConsumer"


class Recorder:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    def event(self, obj, type, reason, message) -> None:
        self.seen.append((reason, message))


async def test_waits_for_the_first_consumer_then_pins_the_volume_to_its_node(
    tmp_path: Path,
) -> None:
    client = FakeClient((PVCS, claim()))
    ctl = provisioner(client, tmp_path)
    ctl.recorder = Recorder()
    await ctl.reconcile(ENSURE_CLASS)
    await converge(ctl, "shop/db")
    assert client.stored(PVS, None, "pvc-c-1") is None
    assert "status" not in client.stored(PVCS, "shop", "db")  # still Pending
    assert ctl.recorder.seen[-1] == (
        "WaitForFirstConsumer",
        "waiting for first consumer to be created before binding",
    )

    # The scheduler placed the claim's first pod on node-b.
    await client.patch(PVCS, "db", {"metadata": {"annotations": {SELECTED_NODE: "node-b"}}}, "shop")
    ctl.refresh()  # type: ignore[attr-defined]
    await converge(ctl, "shop/db")
    pv = client.stored(PVS, None, "pvc-c-1")
    assert pv["spec"]["nodeAffinity"] == {
        "required": {
            "nodeSelectorTerms": [
                {
                    "matchExpressions": [
                        {"key": "kubernetes.io/hostname", "operator": "In", "values": ["node-b"]}
                    ]
                }
            ]
        }
    }
    assert client.stored(PVCS, "shop", "db")["status"]["phase"] == "Bound"
    assert ctl.recorder.seen[-1] == (
        "ProvisioningSucceeded",
        "Successfully provisioned volume pvc-c-1",
    )


async def test_immediate_class_binds_at_once_and_still_honours_a_selected_node(
    tmp_path: Path,
) -> None:
    immediate = {
        "metadata": {"name": CLASS_NAME},
        "provisioner": "tugboat.io/local-path",
        "reclaimPolicy": "Retain",
        "volumeBindingMode": "Immediate",
    }
    pinned = claim()
    pinned["metadata"]["annotations"] = {SELECTED_NODE: "node-a"}
    for body, nodes in ((claim(), None), (pinned, ["node-a"])):
        client = FakeClient((CLASSES, immediate), (PVCS, body))
        ctl = provisioner(client, tmp_path)
        await converge(ctl, "shop/db")
        pv = client.stored(PVS, None, "pvc-c-1")
        assert pv["spec"]["persistentVolumeReclaimPolicy"] == "Retain"
        terms = (pv["spec"].get("nodeAffinity") or {}).get("required", {})
        values = terms and terms["nodeSelectorTerms"][0]["matchExpressions"][0]["values"]
        assert (values or None) == nodes
        assert client.stored(PVCS, "shop", "db")["status"]["phase"] == "Bound"

"""The official ``kubernetes`` Python client against tugboat, unchanged."""

from __future__ import annotations

import time
import uuid

import pytest
from kubernetes import client, config, dynamic, watch
from kubernetes.client.rest import ApiException

pytestmark = pytest.mark.compat


@pytest.fixture
def k8s(api):
    return config.new_client_from_config(config_file=api.kubeconfig)


@pytest.fixture
def ns(k8s) -> str:
    name = f"py-{uuid.uuid4().hex[:8]}"
    client.CoreV1Api(k8s).create_namespace(
        client.V1Namespace(metadata=client.V1ObjectMeta(name=name))
    )
    return name


def deployment(name: str) -> client.V1Deployment:
    labels = {"app": name}
    return client.V1Deployment(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1DeploymentSpec(
            replicas=1,
            selector=client.V1LabelSelector(match_labels=labels),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels=labels),
                spec=client.V1PodSpec(
                    containers=[
                        client.V1Container(
                            name="c",
                            image="busybox:1.35",
                            env=[client.V1EnvVar(name="A", value="1")],
                        )
                    ]
                ),
            ),
        ),
    )


def test_typed_create_list_get_delete(k8s, ns):
    core, apps = client.CoreV1Api(k8s), client.AppsV1Api(k8s)
    cm = core.create_namespaced_config_map(
        ns,
        client.V1ConfigMap(
            metadata=client.V1ObjectMeta(name="c", labels={"a": "b"}), data={"k": "v"}
        ),
    )
    assert cm.metadata.uid and cm.metadata.resource_version
    assert [
        i.metadata.name for i in core.list_namespaced_config_map(ns, label_selector="a=b").items
    ] == ["c"]
    d = apps.create_namespaced_deployment(ns, deployment("d"))
    assert d.spec.strategy.type == "RollingUpdate" and d.metadata.generation == 1
    got = apps.read_namespaced_deployment("d", ns)
    assert got.spec.template.spec.containers[0].image == "busybox:1.35"
    with pytest.raises(ApiException) as exc:
        core.create_namespaced_config_map(
            ns, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="c"))
        )
    assert exc.value.status == 409
    core.delete_namespaced_config_map("c", ns)
    with pytest.raises(ApiException) as exc:
        core.read_namespaced_config_map("c", ns)
    assert exc.value.status == 404


def test_patch_types(k8s, ns):
    apps = client.AppsV1Api(k8s)
    apps.create_namespaced_deployment(ns, deployment("p"))
    # a dict body is sent as a strategic merge patch
    apps.patch_namespaced_deployment(
        "p",
        ns,
        {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]}}}},
    )
    d = apps.read_namespaced_deployment("p", ns)
    c = d.spec.template.spec.containers[0]
    assert c.image == "busybox:1.36" and c.env[0].name == "A"
    # a list body is a JSON patch
    apps.patch_namespaced_deployment(
        "p", ns, [{"op": "replace", "path": "/spec/replicas", "value": 4}]
    )
    assert apps.read_namespaced_deployment("p", ns).spec.replicas == 4
    scale = apps.patch_namespaced_deployment_scale("p", ns, {"spec": {"replicas": 2}})
    assert scale.spec.replicas == 2
    status = apps.patch_namespaced_deployment_status("p", ns, {"status": {"replicas": 2}})
    assert status.status.replicas == 2


def test_watch_resume_and_410(k8s, ns):
    core = client.CoreV1Api(k8s)
    rv = core.list_namespaced_config_map(ns).metadata.resource_version
    for i in range(3):
        core.create_namespaced_config_map(
            ns, client.V1ConfigMap(metadata=client.V1ObjectMeta(name=f"w{i}"))
        )
    w = watch.Watch()
    seen = []
    for ev in w.stream(core.list_namespaced_config_map, ns, resource_version=rv, timeout_seconds=5):
        seen.append((ev["type"], ev["object"].metadata.name))
        if len(seen) == 3:
            w.stop()
    assert seen == [("ADDED", "w0"), ("ADDED", "w1"), ("ADDED", "w2")]
    # resume from the second event's revision: only the third arrives
    second = core.read_namespaced_config_map("w1", ns).metadata.resource_version
    w = watch.Watch()
    for ev in w.stream(
        core.list_namespaced_config_map, ns, resource_version=second, timeout_seconds=5
    ):
        assert ev["object"].metadata.name == "w2"
        w.stop()


def test_watch_too_old_is_410_for_the_client(tmp_path):
    from tests.conftest import start_apiserver

    server = start_apiserver(tmp_path, extra=["--history", "3"])
    try:
        api_client = config.new_client_from_config(config_file=server.kubeconfig)
        core = client.CoreV1Api(api_client)
        first = core.create_namespaced_config_map(
            "default", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="x0"))
        ).metadata.resource_version
        for i in range(1, 8):
            core.create_namespaced_config_map(
                "default", client.V1ConfigMap(metadata=client.V1ObjectMeta(name=f"x{i}"))
            )
        with pytest.raises(ApiException) as exc:
            for _ in watch.Watch().stream(
                core.list_namespaced_config_map,
                "default",
                resource_version=first,
                timeout_seconds=5,
            ):
                pass
        assert exc.value.status == 410
    finally:
        server.stop()


def test_crd_and_custom_objects(k8s):
    ext, custom = client.ApiextensionsV1Api(k8s), client.CustomObjectsApi(k8s)
    group = f"py{uuid.uuid4().hex[:6]}.example.com"
    ext.create_custom_resource_definition(
        {
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": f"crontabs.{group}"},
            "spec": {
                "group": group,
                "scope": "Namespaced",
                "names": {"plural": "crontabs", "singular": "crontab", "kind": "CronTab"},
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
    )
    obj = custom.create_namespaced_custom_object(
        group,
        "v1",
        "default",
        "crontabs",
        {
            "apiVersion": f"{group}/v1",
            "kind": "CronTab",
            "metadata": {"name": "ct"},
            "spec": {"cron": "* * * * *"},
        },
    )
    assert obj["spec"]["cron"] == "* * * * *"
    patched = custom.patch_namespaced_custom_object(
        group, "v1", "default", "crontabs", "ct", {"spec": {"cron": "*/5 * * * *"}}
    )
    assert patched["spec"]["cron"] == "*/5 * * * *"
    items = custom.list_namespaced_custom_object(group, "v1", "default", "crontabs")["items"]
    assert [i["metadata"]["name"] for i in items] == ["ct"]
    custom.delete_namespaced_custom_object(group, "v1", "default", "crontabs", "ct")


def test_dynamic_client(k8s, ns):
    dyn = dynamic.DynamicClient(k8s)
    cms = dyn.resources.get(api_version="v1", kind="ConfigMap")
    cms.create(
        body={
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "dy"},
            "data": {"a": "1"},
        },
        namespace=ns,
    )
    got = cms.get(name="dy", namespace=ns)
    assert got.data.a == "1"
    deployments = dyn.resources.get(api_version="apps/v1", kind="Deployment")
    assert deployments.namespaced
    cms.delete(name="dy", namespace=ns)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            cms.get(name="dy", namespace=ns)
        except dynamic.exceptions.NotFoundError:
            break
    else:
        pytest.fail("the ConfigMap was not deleted")

"""A small kopf operator used by test_kopf.py: it records what its handlers saw."""

import kopf

GROUP = "kopf.tugboat.dev"


@kopf.on.create(GROUP, "v1", "greetings")
def created(spec, name, namespace, logger, **_):
    kopf.info(
        {"metadata": {"name": name, "namespace": namespace}},
        reason="Greeted",
        message=f"hello {spec.get('who')}",
    )
    return {"message": f"hello {spec.get('who')}"}


@kopf.on.update(GROUP, "v1", "greetings")
def updated(spec, **_):
    return {"message": f"hello again {spec.get('who')}"}


@kopf.on.delete(GROUP, "v1", "greetings")
def deleted(name, namespace, **_):
    import kubernetes

    kubernetes.config.load_kube_config()
    kubernetes.client.CoreV1Api().create_namespaced_config_map(
        namespace, {"metadata": {"name": f"goodbye-{name}"}, "data": {"who": name}}
    )

"""Container environments: expansion, downward API, ConfigMaps, Secrets, envFrom; and the pod
worker retrying a CreateContainerConfigError until the ConfigMap exists."""

from __future__ import annotations

import base64

import pytest

from kubelet.env import (
    ConfigError,
    EnvContext,
    Sources,
    environment,
    expand,
    fetch_sources,
    references,
    service_variables,
)
from kubelet.podworker import PodWorker
from machinery.kinds import lookup
from tests.unit.test_kubelet_worker import Env, env, settle, sleeper  # noqa: F401

POD = {
    "metadata": {
        "name": "web",
        "namespace": "shop",
        "uid": "u-1",
        "labels": {"app": "web", "tier": "front"},
        "annotations": {"note": 'say "hi"'},
    },
    "spec": {
        "nodeName": "n1",
        "containers": [
            {
                "name": "main",
                "resources": {"requests": {"cpu": "250m"}, "limits": {"memory": "64Mi"}},
            }
        ],
    },
}
CTX = EnvContext(pod_ip="10.0.0.7", host_ip="192.0.2.1", cpu_capacity_millis=4000)
SOURCES = Sources(
    configmaps={"cfg": {"LEVEL": b"debug", "bad-key!": b"x", "URL": b"http://x"}},
    secrets={"creds": {"password": b"s3cret"}},
)


@pytest.mark.parametrize(
    ("text", "variables", "expected"),
    [
        ("$(A)-$(B)", {"A": "1", "B": "2"}, "1-2"),
        ("$(MISSING)", {}, "$(MISSING)"),
        ("$$(A)", {"A": "1"}, "$(A)"),
        ("$$$(A)", {"A": "1"}, "$1"),
        ("$(A", {"A": "1"}, "$(A"),
        ("plain $ sign", {}, "plain $ sign"),
    ],
    ids=["known", "unknown-kept", "escaped", "escape-then-ref", "unclosed", "lone-dollar"],
)
def test_expand(text: str, variables: dict[str, str], expected: str) -> None:
    assert expand(text, variables) == expected


def _env(items: list[dict], env_from: list[dict] | None = None) -> dict[str, str]:
    c = {"name": "main", "env": items, "envFrom": env_from or []}
    return environment(POD, c, SOURCES, CTX)[0]


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ({"fieldRef": {"fieldPath": "metadata.name"}}, "web"),
        ({"fieldRef": {"fieldPath": "metadata.namespace"}}, "shop"),
        ({"fieldRef": {"fieldPath": "metadata.uid"}}, "u-1"),
        ({"fieldRef": {"fieldPath": "metadata.labels['tier']"}}, "front"),
        ({"fieldRef": {"fieldPath": "metadata.labels"}}, 'app="web"\ntier="front"'),
        ({"fieldRef": {"fieldPath": "metadata.annotations"}}, 'note="say \\"hi\\""'),
        ({"fieldRef": {"fieldPath": "status.podIP"}}, "10.0.0.7"),
        ({"fieldRef": {"fieldPath": "status.hostIP"}}, "192.0.2.1"),
        ({"fieldRef": {"fieldPath": "spec.nodeName"}}, "n1"),
        ({"resourceFieldRef": {"resource": "requests.cpu", "divisor": "1m"}}, "250"),
        ({"resourceFieldRef": {"resource": "requests.cpu"}}, "1"),
        ({"resourceFieldRef": {"resource": "limits.cpu"}}, "4"),
        ({"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}}, "64"),
        ({"configMapKeyRef": {"name": "cfg", "key": "LEVEL"}}, "debug"),
        ({"secretKeyRef": {"name": "creds", "key": "password"}}, "s3cret"),
    ],
    ids=lambda x: str(x)[:40] if isinstance(x, dict) else None,
)
def test_value_from(source: dict, expected: str) -> None:
    assert _env([{"name": "X", "valueFrom": source}]) == {"X": expected}


def test_env_from_with_prefix_then_env_overrides_and_expands() -> None:
    got = _env(
        [
            {"name": "APP_LEVEL", "value": "info"},
            {"name": "WHERE", "value": "$(APP_URL)/v1"},
            {"name": "RAW", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "URL"}}},
        ],
        [{"configMapRef": {"name": "cfg"}, "prefix": "APP_"}, {"secretRef": {"name": "creds"}}],
    )
    assert got == {
        "APP_LEVEL": "info",
        "APP_URL": "http://x",
        "password": "s3cret",
        "WHERE": "http://x/v1",
        "RAW": "http://x",
    }
    c = {"name": "main", "envFrom": [{"configMapRef": {"name": "cfg"}}]}
    assert environment(POD, c, SOURCES, CTX)[1] == ["bad-key!"]


@pytest.mark.parametrize(
    ("items", "env_from", "message"),
    [
        (
            [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "nope", "key": "k"}}}],
            None,
            'configmap "nope" not found',
        ),
        (
            [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "k"}}}],
            None,
            "couldn't find key k in ConfigMap shop/cfg",
        ),
        (
            [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "user"}}}],
            None,
            "couldn't find key user in Secret shop/creds",
        ),
        ([], [{"secretRef": {"name": "nope"}}], 'secret "nope" not found'),
    ],
    ids=["missing-configmap", "missing-key", "missing-secret-key", "missing-envfrom"],
)
def test_missing_required_configuration(items, env_from, message) -> None:
    with pytest.raises(ConfigError) as err:
        _env(items, env_from)
    assert str(err.value) == message


def test_optional_references_are_left_out() -> None:
    ref = {"name": "nope", "key": "k", "optional": True}
    got = _env(
        [{"name": "X", "valueFrom": {"secretKeyRef": ref}}, {"name": "Y", "value": "y"}],
        [{"configMapRef": {"name": "nope", "optional": True}}],
    )
    assert got == {"Y": "y"}


def test_references_cover_env_envfrom_and_volumes() -> None:
    pod = {
        "spec": {
            "initContainers": [{"name": "i", "envFrom": [{"secretRef": {"name": "s1"}}]}],
            "containers": [
                {
                    "name": "c",
                    "env": [{"name": "A", "valueFrom": {"configMapKeyRef": {"name": "c1"}}}],
                }
            ],
            "volumes": [
                {"name": "v1", "configMap": {"name": "c2"}},
                {"name": "v2", "secret": {"secretName": "s2"}},
                {"name": "v3", "projected": {"sources": [{"configMap": {"name": "c3"}}]}},
            ],
        }
    }
    assert references(pod) == {
        ("secret", "s1"),
        ("configmap", "c1"),
        ("configmap", "c2"),
        ("secret", "s2"),
        ("configmap", "c3"),
    }


async def test_fetch_sources_decodes_and_marks_missing(env: Env) -> None:  # noqa: F811
    env.api.seed(
        lookup("secrets"),
        {
            "metadata": {"name": "s", "namespace": "default"},
            "data": {"k": base64.b64encode(b"v").decode()},
        },
    )
    pod = {
        "metadata": {"namespace": "default"},
        "spec": {
            "containers": [{"name": "c", "envFrom": [{"secretRef": {"name": "s"}}]}],
            "volumes": [{"name": "v", "configMap": {"name": "gone"}}],
        },
    }
    sources = await fetch_sources(env.api.async_client(), pod)
    assert sources.secrets == {"s": {"k": b"v"}}
    assert sources.configmaps == {"gone": None}


async def test_config_error_is_retried_until_the_configmap_exists(env: Env) -> None:  # noqa: F811
    ref = {"name": "settings", "key": "mode"}
    pod = env.seed("cfg", [sleeper(env=[{"name": "MODE", "valueFrom": {"configMapKeyRef": ref}}])])
    worker = PodWorker(env.context(), pod)
    wake = await settle(worker, env)
    waiting = env.container("cfg", "main")["state"]["waiting"]
    assert waiting == {
        "reason": "CreateContainerConfigError",
        "message": 'configmap "settings" not found',
    }
    assert wake is not None and wake > 0
    env.api.seed(
        lookup("configmaps"),
        {"metadata": {"name": "settings", "namespace": "default"}, "data": {"mode": "fast"}},
    )
    env.clock.step(wake)
    await settle(worker, env)
    assert "running" in env.container("cfg", "main")["state"]
    created = next(iter(env.fake.containers.values()))
    assert {kv.key: kv.value for kv in created.config.envs} == {"MODE": "fast"}


def _svc(name: str, ns: str, ip: str, ports: list[dict]) -> dict:
    return {"metadata": {"name": name, "namespace": ns}, "spec": {"clusterIP": ip, "ports": ports}}


def test_service_variables_follow_docker_links_naming() -> None:
    services = [
        _svc("redis-master", "app", "10.96.0.11", [{"name": "redis", "port": 6379}]),
        _svc("dns", "app", "10.96.0.12", [{"port": 53, "protocol": "UDP"}]),
        _svc("headless", "app", "None", [{"port": 80}]),
        _svc("elsewhere", "other", "10.96.0.13", [{"port": 80}]),
        _svc("kubernetes", "default", "10.96.0.1", [{"name": "https", "port": 443}]),
    ]
    assert service_variables(services, "app") == {
        "DNS_SERVICE_HOST": "10.96.0.12",
        "DNS_SERVICE_PORT": "53",
        "DNS_PORT": "udp://10.96.0.12:53",
        "DNS_PORT_53_UDP": "udp://10.96.0.12:53",
        "DNS_PORT_53_UDP_PROTO": "udp",
        "DNS_PORT_53_UDP_PORT": "53",
        "DNS_PORT_53_UDP_ADDR": "10.96.0.12",
        "KUBERNETES_SERVICE_HOST": "10.96.0.1",
        "KUBERNETES_SERVICE_PORT": "443",
        "KUBERNETES_SERVICE_PORT_HTTPS": "443",
        "KUBERNETES_PORT": "tcp://10.96.0.1:443",
        "KUBERNETES_PORT_443_TCP": "tcp://10.96.0.1:443",
        "KUBERNETES_PORT_443_TCP_PROTO": "tcp",
        "KUBERNETES_PORT_443_TCP_PORT": "443",
        "KUBERNETES_PORT_443_TCP_ADDR": "10.96.0.1",
        "REDIS_MASTER_SERVICE_HOST": "10.96.0.11",
        "REDIS_MASTER_SERVICE_PORT": "6379",
        "REDIS_MASTER_SERVICE_PORT_REDIS": "6379",
        "REDIS_MASTER_PORT": "tcp://10.96.0.11:6379",
        "REDIS_MASTER_PORT_6379_TCP": "tcp://10.96.0.11:6379",
        "REDIS_MASTER_PORT_6379_TCP_PROTO": "tcp",
        "REDIS_MASTER_PORT_6379_TCP_PORT": "6379",
        "REDIS_MASTER_PORT_6379_TCP_ADDR": "10.96.0.11",
    }


def test_a_namespace_kubernetes_service_shadows_the_master_one() -> None:
    services = [
        _svc("kubernetes", "default", "10.96.0.1", [{"port": 443}]),
        _svc("kubernetes", "app", "10.96.0.50", [{"port": 80}]),
    ]
    assert service_variables(services, "app")["KUBERNETES_SERVICE_HOST"] == "10.96.0.50"
    assert service_variables(services[:1], "app")["KUBERNETES_SERVICE_HOST"] == "10.96.0.1"


def test_container_env_overrides_and_expands_service_variables() -> None:
    pod = {"metadata": {"name": "p", "namespace": "app"}, "spec": {}}
    c = {
        "name": "c",
        "env": [
            {"name": "REDIS_MASTER_SERVICE_PORT", "value": "1"},
            {"name": "URL", "value": "redis://$(REDIS_MASTER_SERVICE_HOST)"},
        ],
    }
    sources = Sources(services=[_svc("redis-master", "app", "10.96.0.11", [{"port": 6379}])])
    variables, _ = environment(pod, c, sources)
    assert variables["REDIS_MASTER_SERVICE_PORT"] == "1"
    assert variables["URL"] == "redis://10.96.0.11"

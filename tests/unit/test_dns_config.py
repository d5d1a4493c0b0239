"""The resolv.conf the node agent asks the runtime for (:func:`kubelet.specs.dns_config`), per
``dnsPolicy`` and ``dnsConfig``, as the Kubernetes kubelet builds it."""

from __future__ import annotations

from typing import Any

import pytest

from kubelet.specs import NodeContext, dns_config

NODE = NodeContext("node-0", cluster_dns=("10.96.0.10",), cluster_domain="cluster.local")
CLUSTER_SEARCH = ["shop.svc.cluster.local", "svc.cluster.local", "cluster.local"]


def pod(**spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "p", "namespace": "shop"}, "spec": {"containers": [], **spec}}


@pytest.mark.parametrize(
    "spec",
    [
        {},
        {"dnsPolicy": "ClusterFirst"},
        {"dnsPolicy": "ClusterFirstWithHostNet", "hostNetwork": True},
    ],
    ids=["default", "ClusterFirst", "ClusterFirstWithHostNet"],
)
def test_cluster_first_points_at_cluster_dns_with_the_namespace_search_path(spec: Any) -> None:
    config = dns_config(pod(**spec), NODE)
    assert config is not None
    assert list(config.servers) == ["10.96.0.10"]
    assert list(config.searches) == CLUSTER_SEARCH
    assert list(config.options) == ["ndots:5"]


def test_the_search_path_follows_namespace_and_cluster_domain() -> None:
    node = NodeContext("n", cluster_dns=("10.0.0.10",), cluster_domain="example.internal")
    body = pod()
    del body["metadata"]["namespace"]
    config = dns_config(body, node)
    assert config is not None and list(config.servers) == ["10.0.0.10"]
    assert list(config.searches) == [
        "default.svc.example.internal", "svc.example.internal", "example.internal",
    ]  # fmt: skip


@pytest.mark.parametrize(
    "spec",
    [{"dnsPolicy": "Default"}, {"hostNetwork": True}],
    ids=["Default", "hostNetwork-ClusterFirst"],
)
def test_host_resolv_conf_when_the_pod_does_not_use_cluster_dns(spec: Any) -> None:
    assert dns_config(pod(**spec), NODE) is None


def test_dns_config_adds_servers_and_searches_and_overrides_options() -> None:
    custom = {
        "nameservers": ["1.1.1.1"],
        "searches": ["corp.example"],
        "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}],
    }
    config = dns_config(pod(dnsConfig=custom), NODE)
    assert config is not None
    assert list(config.servers) == ["10.96.0.10", "1.1.1.1"]
    assert list(config.searches) == [*CLUSTER_SEARCH, "corp.example"]
    assert list(config.options) == ["ndots:2", "edns0"]


def test_policy_none_takes_only_dns_config() -> None:
    config = dns_config(pod(dnsPolicy="None", dnsConfig={"nameservers": ["9.9.9.9"]}), NODE)
    assert config is not None
    assert (list(config.servers), list(config.searches), list(config.options)) == (
        ["9.9.9.9"], [], [],
    )  # fmt: skip


def test_no_cluster_dns_configured_means_no_cluster_entries() -> None:
    assert dns_config(pod(), NodeContext("n", cluster_dns=())) is None

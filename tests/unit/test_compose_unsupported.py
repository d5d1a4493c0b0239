"""Nothing in a compose file is dropped silently: each key is converted, or a warning names it,
or (not a compose key at all) an error names it. One test per family of keys."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from cli.compose.convert import ComposeError, Conversion, convert
from cli.compose.load import load


def _convert(service: dict, **doc: Any) -> Conversion:
    return convert({"services": {"app": service, **doc.pop("others", {})}, **doc}, "p")


def _kind(result: Conversion, kind: str) -> dict:
    return next(o for o in result.manifests if o["kind"] == kind)


def _pod_spec(result: Conversion) -> dict:
    return _kind(result, "Deployment")["spec"]["template"]["spec"]


# ---------------------------------------------------------------- deploy.labels


def test_deploy_labels_label_the_deployment_and_bad_ones_are_warnings() -> None:
    labels = {"tier": "web", "owner team": "x", "note": "a long free text value"}
    result = _convert({"image": "x", "deploy": {"labels": labels}})
    dep = _kind(result, "Deployment")
    assert dep["metadata"]["labels"] == {
        "tugboat.io/compose-project": "p",
        "tugboat.io/compose-service": "app",
        "tier": "web",
    }
    assert "tier" not in dep["spec"]["selector"]["matchLabels"]
    assert [w.split(":")[0] for w in result.warnings] == [
        "services.app.deploy.labels.owner team",
        "services.app.deploy.labels.note",
    ]
    assert all("invalid label" in w and w.endswith("ignored") for w in result.warnings)


def test_deploy_labels_label_a_bare_pod_too() -> None:
    result = _convert({"image": "x", "restart": "no", "deploy": {"labels": ["tier=job"]}})
    assert _kind(result, "Pod")["metadata"]["labels"]["tier"] == "job"


# ---------------------------------------------------------------- restart


@pytest.mark.parametrize(
    ("service", "policy", "warnings"),
    [
        (
            {"deploy": {"restart_policy": {"condition": "on-failure", "delay": "5s",
                                           "max_attempts": 3, "window": "2m"}}},
            "OnFailure",
            [
                "services.app.deploy.restart_policy.delay: not supported by tug compose, ignored",
                "services.app.deploy.restart_policy.max_attempts: not supported by tug compose, "
                "ignored",
                "services.app.deploy.restart_policy.window: not supported by tug compose, ignored",
            ],
        ),
        (
            {"restart": "on-failure:5"},
            "OnFailure",
            [
                "services.app.restart: the retry limit of on-failure:5 is not supported, "
                "ignored (OnFailure restarts without a limit)"
            ],
        ),
        (
            {"deploy": {"restart_policy": {"condition": "sometimes"}}},
            None,
            [
                "services.app.deploy.restart_policy.condition: unknown value 'sometimes', "
                "restart policy Always used"
            ],
        ),
        (
            {"restart": "no", "deploy": {"restart_policy": {"condition": "none"}}},
            "Never",
            ["services.app.restart: overridden by deploy.restart_policy, ignored"],
        ),
        ({"restart": "on-failure"}, "OnFailure", []),
    ],
    ids=["policy-timings", "on-failure-count", "unknown-condition", "both-given", "plain"],
)  # fmt: skip
def test_restart_details_without_a_field_are_warnings(
    service: dict, policy: str | None, warnings: list[str]
) -> None:
    result = _convert({"image": "x", **service})
    workload = result.manifests[0]
    assert workload["kind"] == ("Deployment" if policy is None else "Pod")
    assert workload["spec"].get("restartPolicy") == policy
    assert result.warnings == warnings


def test_a_restart_policy_typo_is_an_error() -> None:
    with pytest.raises(ComposeError, match=r"unknown compose key .*restart_policy\.delya"):
        _convert({"image": "x", "deploy": {"restart_policy": {"delya": "5s"}}})


# ---------------------------------------------------------------- long-form ports


def test_long_form_ports_name_and_app_protocol_reach_the_service() -> None:
    port = {"target": 80, "published": 31080, "name": "web", "app_protocol": "http"}
    result = _convert({"image": "x", "ports": [port]})
    assert _kind(result, "Service")["spec"]["ports"] == [
        {
            "name": "web",
            "port": 80,
            "targetPort": 80,
            "protocol": "TCP",
            "nodePort": 31080,
            "appProtocol": "http",
        }
    ]
    assert result.warnings == []


def test_long_form_ports_host_ip_and_host_mode_are_warnings() -> None:
    ports = [
        {"target": 80, "host_ip": "127.0.0.1", "mode": "host"},
        {"target": 81, "mode": "ingress"},
    ]
    result = _convert({"image": "x", "ports": ports})
    assert result.warnings == [
        "services.app.ports[0].host_ip: 127.0.0.1 ignored (NodePorts bind all)",
        "services.app.ports[0].mode: 'host' not supported; the port is published through the "
        "Service on every node (as ingress)",
    ]


@pytest.mark.parametrize(
    ("port", "message"),
    [
        (
            {"target": 80, "publised": 8080},
            "unknown compose key services.app.ports\\[0\\].publised",
        ),
        ({"published": 8080}, "services.app.ports\\[0\\]: target is required"),
        ({"target": 80, "published": "8000-8010"}, "invalid port"),
    ],
    ids=["typo", "no-target", "range"],
)
def test_long_form_port_errors(port: dict, message: str) -> None:
    with pytest.raises(ComposeError, match=message):
        _convert({"image": "x", "ports": [port]})


# ---------------------------------------------------------------- service volumes


def test_long_form_volume_options_are_honoured_or_warnings() -> None:
    volumes = [
        {"type": "volume", "source": "data", "target": "/d",
         "volume": {"subpath": "app", "nocopy": True}},
        {"type": "tmpfs", "target": "/t", "tmpfs": {"size": "64m", "mode": 1777}},
        {"type": "bind", "source": "/srv", "target": "/s", "bind": {"propagation": "rshared",
                                                                    "create_host_path": True}},
        {"type": "bind", "source": "/etc", "target": "/e", "volume": {"nocopy": True},
         "consistency": "cached"},
    ]  # fmt: skip
    result = _convert({"image": "x", "volumes": volumes}, volumes={"data": None})
    pod = _pod_spec(result)
    mounts = pod["containers"][0]["volumeMounts"]
    assert mounts[0] == {"name": "data", "mountPath": "/d", "subPath": "app"}
    assert pod["volumes"][1] == {
        "name": "app-1",
        "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"},
    }
    at = "services.app.volumes"
    assert result.warnings == [
        f"{at}[0].volume.nocopy: not supported by tug compose, ignored",
        f"{at}[1].tmpfs.mode: not supported by tug compose, ignored",
        f"{at}[2].bind.propagation: not supported by tug compose, ignored",
        f"{at}[2].bind.create_host_path: not supported by tug compose, ignored",
        f"{at}[3].consistency: not supported by tug compose, ignored",
        f"{at}[3].volume: options for type volume, ignored for bind",
    ]


def test_short_form_volume_modes_other_than_ro_rw_are_warnings() -> None:
    result = _convert({"image": "x", "volumes": ["/srv:/srv:ro,z", "/a:/a:rw"]})
    assert result.warnings == ["services.app.volumes[0]: mode 'z' not supported, ignored"]
    assert _pod_spec(result)["containers"][0]["volumeMounts"][0]["readOnly"] is True


def test_a_long_form_volume_typo_is_an_error() -> None:
    with pytest.raises(
        ComposeError, match=re.escape("unknown compose key services.app.volumes[0].traget")
    ):
        _convert({"image": "x", "volumes": [{"type": "tmpfs", "target": "/t", "traget": "/u"}]})


# ---------------------------------------------------------------- top-level volumes


def test_named_volumes_become_claims_of_the_default_class_without_a_warning() -> None:
    volumes = {"data": {"name": "shop-data", "labels": {"tugboat.io/size": "2Gi", "note": "db"}}}
    result = _convert({"image": "x", "volumes": ["data:/d"]}, volumes=volumes)
    claim = _kind(result, "PersistentVolumeClaim")
    assert claim["metadata"]["name"] == "shop-data"
    assert claim["metadata"]["annotations"] == {"note": "db"}
    assert "storageClassName" not in claim["spec"]
    assert claim["spec"]["resources"]["requests"]["storage"] == "2Gi"
    assert _pod_spec(result)["volumes"][0]["persistentVolumeClaim"] == {"claimName": "shop-data"}
    assert result.warnings == []


@pytest.mark.parametrize(
    ("spec", "claim"),
    [({"external": True}, "data"), ({"external": True, "name": "old-data"}, "old-data"),
     ({"external": {"name": "legacy"}}, "legacy")],
    ids=["by-key", "by-name", "v3.0-external-name"],
)  # fmt: skip
def test_an_external_volume_uses_the_existing_claim(spec: dict, claim: str) -> None:
    result = _convert({"image": "x", "volumes": ["data:/d"]}, volumes={"data": spec})
    assert [o["kind"] for o in result.manifests] == ["Deployment"]
    assert _pod_spec(result)["volumes"][0]["persistentVolumeClaim"] == {"claimName": claim}


def test_volume_drivers_are_warnings_and_typos_errors() -> None:
    volumes = {"data": {"driver": "local", "driver_opts": {"type": "nfs"}}}
    result = _convert({"image": "x", "volumes": ["data:/d"]}, volumes=volumes)
    assert result.warnings == [
        "volumes.data.driver: not supported by tug compose, ignored",
        "volumes.data.driver_opts: not supported by tug compose, ignored",
    ]
    with pytest.raises(ComposeError, match=re.escape("unknown compose key volumes.data.extrenal")):
        _convert({"image": "x"}, volumes={"data": {"extrenal": True}})


# ---------------------------------------------------------------- depends_on


def test_depends_on_restart_is_a_warning_and_optional_missing_services_are_skipped() -> None:
    deps = {"db": {"condition": "service_started", "restart": True}, "cache": {"required": False}}
    result = _convert(
        {"image": "x", "depends_on": deps}, others={"db": {"image": "x", "expose": ["5432"]}}
    )
    assert result.warnings == [
        "services.app.depends_on.db.restart: not supported by tug compose, ignored",
        "services.app.depends_on.cache: not a service of this file, optional: no wait",
    ]
    assert [c["name"] for c in _pod_spec(result)["initContainers"]] == ["wait-for-db"]


@pytest.mark.parametrize(
    ("deps", "message"),
    [
        ({"db": {"condition": "service_ready"}}, "depends_on.db.condition: invalid value"),
        ({"db": {"requird": False}}, "unknown compose key services.app.depends_on.db.requird"),
        ({"nope": {"required": True}}, "unknown service 'nope'"),
    ],
    ids=["bad-condition", "typo", "required-missing"],
)
def test_depends_on_errors(deps: dict, message: str) -> None:
    with pytest.raises(ComposeError, match=message):
        _convert({"image": "x", "depends_on": deps}, others={"db": {"image": "x"}})


# ---------------------------------------------------------------- per-service networks


def test_service_network_keys_other_than_aliases_are_warnings() -> None:
    nets = {"back": {"aliases": ["database"], "ipv4_address": "172.16.0.5", "priority": 10}}
    result = _convert({"image": "x", "expose": ["5432"], "networks": nets})
    assert result.warnings == [
        "services.app.networks.back.ipv4_address: not supported by tug compose, ignored",
        "services.app.networks.back.priority: not supported by tug compose, ignored",
    ]
    assert [o["metadata"]["name"] for o in result.manifests if o["kind"] == "Service"] == [
        "app",
        "database",
    ]


def test_separate_networks_warn_that_isolation_is_not_enforced() -> None:
    result = _convert(
        {"image": "x", "networks": ["front"]}, others={"db": {"image": "x", "networks": ["back"]}}
    )
    assert result.warnings == [
        "networks: back, front are not isolated from each other: tugboat stores NetworkPolicy "
        "objects but does not enforce them, so services on separate networks can reach each "
        "other"
    ]


# ---------------------------------------------------------------- deploy.resources


def test_pids_and_devices_are_warnings_with_their_full_path() -> None:
    resources = {
        "limits": {"cpus": "0.5", "memory": "64m", "pids": 100},
        "reservations": {"memory": "32m", "devices": [{"capabilities": ["gpu"]}]},
    }
    result = _convert({"image": "x", "deploy": {"resources": resources}})
    assert result.warnings == [
        "services.app.deploy.resources.limits.pids: not supported by tug compose, ignored",
        "services.app.deploy.resources.reservations.devices: not supported by tug compose, ignored",
    ]
    assert _pod_spec(result)["containers"][0]["resources"] == {
        "limits": {"cpu": "0.5", "memory": "64Mi"},
        "requests": {"memory": "32Mi"},
    }


@pytest.mark.parametrize(
    ("resources", "message"),
    [
        ({"limit": {"cpus": "1"}}, "unknown compose key services.app.deploy.resources.limit$"),
        ({"reservations": {"cpu": "1"}}, "unknown compose key .*resources.reservations.cpu$"),
        ({"reservations": {"memory": "lots"}}, "resources.reservations.memory: invalid memory"),
    ],
    ids=["resources-typo", "reservations-typo", "bad-memory"],
)
def test_resource_errors_name_the_full_path(resources: dict, message: str) -> None:
    with pytest.raises(ComposeError, match=message):
        _convert({"image": "x", "deploy": {"resources": resources}})


# ---------------------------------------------------------------- environment and env_file


def _write(tmp_path: Path, service: str, **files: str) -> Path:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    compose = tmp_path / "docker-compose.yml"
    compose.write_text(f"services:\n  app:\n    image: x\n{service}")
    return compose


def test_environment_without_a_value_comes_from_where_tug_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TUG_TEST_SET", "from-shell")
    monkeypatch.delenv("TUG_TEST_UNSET", raising=False)
    compose = _write(tmp_path, "    environment: [TUG_TEST_SET, TUG_TEST_UNSET, EMPTY=, PLAIN=1]\n")
    cf = load(compose)
    env = _pod_spec(convert(cf.doc, cf.project))["containers"][0]["env"]
    assert env == [
        {"name": "TUG_TEST_SET", "value": "from-shell"},
        {"name": "EMPTY", "value": ""},
        {"name": "PLAIN", "value": "1"},
    ]


def test_environment_map_entry_without_a_value_comes_from_dotenv(tmp_path: Path) -> None:
    compose = _write(
        tmp_path, "    environment:\n      FROM_DOTENV:\n", **{".env": "FROM_DOTENV=dot\n"}
    )
    env = load(compose).doc["services"]["app"]["environment"]
    assert env == {"FROM_DOTENV": "dot"}


def test_an_optional_env_file_may_be_missing(tmp_path: Path) -> None:
    service = (
        "    env_file:\n      - path: there.env\n"
        "      - path: missing.env\n        required: false\n"
    )
    cf = load(_write(tmp_path, service, **{"there.env": "A=1\n"}))
    assert cf.doc["services"]["app"]["environment"] == {"A": "1"}
    assert cf.warnings == []


def test_a_required_env_file_must_exist_and_format_is_a_warning(tmp_path: Path) -> None:
    with pytest.raises(ComposeError, match=re.escape("missing.env")):
        load(_write(tmp_path, "    env_file:\n      - path: missing.env\n"))
    cf = load(
        _write(
            tmp_path,
            "    env_file:\n      - path: a.env\n        format: raw\n",
            **{"a.env": "A=1\n"},
        )
    )
    assert cf.warnings == ["services.app.env_file[0].format: not supported by tug compose, ignored"]

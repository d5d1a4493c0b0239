"""Compose conversion rules, table-driven; the whole-file cases are in test_compose_golden.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli.compose.convert import ComposeError, convert, memory, seconds, words
from cli.compose.load import interpolate, load


def _one(service: dict, kind: str = "Deployment", **doc: object) -> dict:
    result = convert({"services": {"app": service}, **doc}, "p")
    return next(o for o in result.manifests if o["kind"] == kind)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("10s", 10), ("1m30s", 90), ("500ms", 1), ("2h", 7200), (15, 15)],
    ids=["seconds", "compound", "rounded-up-to-1", "hours", "number"],
)
def test_durations(value: object, expected: int) -> None:
    assert seconds(value, "x") == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [("512m", "512Mi"), ("1g", "1Gi"), ("100k", "100Ki"), ("2048", "2048"), ("128M", "128Mi")],
)
def test_memory_sizes(value: str, expected: str) -> None:
    assert memory(value, "x") == expected


def test_command_string_is_split_like_compose() -> None:
    assert words("sh -c 'echo a b'") == ["sh", "-c", "echo a b"]


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"services": {"app": {"imgae": "x"}}}, "unknown compose key services.app.imgae"),
        ({"services": {"app": {"image": "x"}}, "servics": {}}, "unknown compose key servics"),
        ({"services": {"app": {}}}, "services.app: needs image or build"),
        ({"services": {}}, "no services defined"),
        (
            {"services": {"app": {"image": "x", "depends_on": ["nope"]}}},
            "unknown service 'nope'",
        ),
        (
            {"services": {"app": {"image": "x", "volumes": ["data:/d"]}}},
            "volume 'data' is not declared",
        ),
    ],
    ids=["typo-in-service", "typo-at-top", "no-image", "no-services", "bad-depends", "undeclared"],
)
def test_errors_name_the_problem(doc: dict, message: str) -> None:
    with pytest.raises(ComposeError, match=message):
        convert(doc, "p")


def test_unsupported_keys_are_warnings_naming_them() -> None:
    result = convert({"services": {"app": {"image": "x", "cap_add": ["NET_ADMIN"]}}}, "p")
    assert result.warnings == ["services.app.cap_add: not supported by tug compose, ignored"]


@pytest.mark.parametrize(
    ("restart", "kind", "policy"),
    [("always", "Deployment", None), ("no", "Pod", "Never"), ("on-failure:3", "Pod", "OnFailure")],
)
def test_restart_picks_the_workload(restart: str, kind: str, policy: str | None) -> None:
    obj = _one({"image": "x", "restart": restart}, kind)
    assert obj["spec"].get("restartPolicy") == policy


def test_ports_published_in_node_port_range_become_node_ports() -> None:
    result = convert({"services": {"app": {"image": "x", "ports": ["31001:80", "8080:81"]}}}, "p")
    svc = next(o for o in result.manifests if o["kind"] == "Service")
    assert svc["spec"]["type"] == "NodePort"
    assert [(p["port"], p.get("nodePort")) for p in svc["spec"]["ports"]] == [
        (80, 31001),
        (81, None),
    ]
    assert any("8080 is outside the NodePort range" in w for w in result.warnings)


def test_expose_only_gives_cluster_ip() -> None:
    result = convert({"services": {"app": {"image": "x", "expose": ["9000"]}}}, "p")
    svc = next(o for o in result.manifests if o["kind"] == "Service")
    assert svc["spec"]["type"] == "ClusterIP"


def test_bind_mount_is_resolved_against_the_file() -> None:
    svc = {"image": "x", "volumes": ["./data:/data:ro"]}
    dep = convert({"services": {"app": svc}}, "p", base_dir="/srv/app").manifests[0]
    pod = dep["spec"]["template"]["spec"]
    assert pod["volumes"] == [{"name": "app-0", "hostPath": {"path": "/srv/app/data"}}]
    mount = pod["containers"][0]["volumeMounts"][0]
    assert mount == {"name": "app-0", "mountPath": "/data", "readOnly": True}


def test_built_service_uses_the_given_image() -> None:
    dep = convert(
        {"services": {"app": {"build": "."}}}, "p", images={"app": "localhost/p/app:abc"}
    ).manifests[0]
    c = dep["spec"]["template"]["spec"]["containers"][0]
    assert (c["image"], c["imagePullPolicy"]) == ("localhost/p/app:abc", "IfNotPresent")


@pytest.mark.parametrize(
    ("text", "expected"),
    [("${A}", "1"), ("${B:-dflt}", "dflt"), ("$A-$A", "1-1"), ("$$A", "$A"), ("${B-x}", "x")],
)
def test_interpolation(text: str, expected: str) -> None:
    assert interpolate(text, {"A": "1"}) == expected


def test_env_file_is_merged_under_environment(tmp_path: Path) -> None:
    (tmp_path / "app.env").write_text("A=from-file\nB='quoted'\n")
    (tmp_path / "docker-compose.yml").write_text(
        "services:\n  app:\n    image: x\n    env_file: app.env\n    environment: [A=own]\n"
    )
    cf = load(tmp_path / "docker-compose.yml")
    assert cf.doc["services"]["app"]["environment"] == {"A": "own", "B": "quoted"}
    assert cf.project == tmp_path.name.lower().replace("_", "-")

"""Pods admitted as metadata + a remembered body give exactly what whole admission gives."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from machinery.errors import Invalid
from machinery.types import admission, admit
from machinery.types.admission import admit_whole
from machinery.types.registry import RULES

POD_RULES = RULES[("v1", "Pod")]


def pod(**meta: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", **meta},
        "spec": {
            "containers": [
                {
                    "name": "c",
                    "image": "busybox:1.35",
                    "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}},
                }
            ]
        },
    }


def whole(obj: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    return admit_whole(copy.deepcopy(obj), POD_RULES, None)


def outcome(fn, obj: dict[str, Any]) -> Any:  # type: ignore[no-untyped-def]
    try:
        return fn(copy.deepcopy(obj))
    except Invalid as exc:
        return ("Invalid", exc.status())


def with_spec(obj: dict[str, Any], **spec: Any) -> dict[str, Any]:
    obj["spec"].update(spec)
    return obj


CASES = {
    "plain": pod(),
    "labels and annotations": pod(labels={"app": "web"}, annotations={"a": "b"}),
    "generateName": {**pod(), "metadata": {"generateName": "web-"}},
    "owner": pod(
        ownerReferences=[
            {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "u-1"}
        ]
    ),
    "no apiVersion": {k: v for k, v in pod().items() if k != "apiVersion"},
    "bad name": pod(name="Not_A_Name"),
    "bad label": pod(labels={"-x": "y"}),
    "unknown metadata field": pod(colour="blue"),
    "unknown spec field": with_spec(pod(), hostnam="x"),
    "invalid spec": with_spec(pod(), restartPolicy="Sometimes"),
    "wrong type in spec": with_spec(pod(), activeDeadlineSeconds="soon"),
    "no metadata": {k: v for k, v in pod().items() if k != "metadata"},
    "status given": {**pod(), "status": {"phase": "Running"}},
}


@pytest.mark.parametrize("name", list(CASES))
def test_apart_equals_whole(name: str) -> None:
    obj = CASES[name]
    expected = outcome(lambda o: admit_whole(o, POD_RULES, None), obj)
    for _ in range(2):  # the second admission reads the remembered body
        got = outcome(lambda o: admit(o, api_version="v1", kind="Pod"), obj)
        assert got == expected
        if not isinstance(got, tuple) or got[0] != "Invalid":
            # same keys in the same order: the stored JSON is byte-identical
            assert list(got[0]) == list(expected[0])
            assert list(got[0]["metadata"]) == list(expected[0]["metadata"])


def test_remembered_body_is_not_shared_between_objects() -> None:
    first, _ = admit(pod(name="a"), api_version="v1", kind="Pod")
    first["spec"]["containers"][0]["image"] = "changed"
    first["spec"]["nodeName"] = "n1"
    second, _ = admit(pod(name="b"), api_version="v1", kind="Pod")
    assert second["spec"]["containers"][0]["image"] == "busybox:1.35"
    assert "nodeName" not in second["spec"]
    assert second["metadata"]["name"] == "b"


def test_updates_are_admitted_whole() -> None:
    old, _ = admit(pod(), api_version="v1", kind="Pod")
    new = pod()
    new["spec"]["restartPolicy"] = "Never"  # pod spec is immutable: only the whole path knows
    with pytest.raises(Invalid) as err:
        admit(new, api_version="v1", kind="Pod", old=old)
    assert "pod updates may not change fields" in str(err.value.status())


def test_pods_from_one_template_share_one_remembered_body() -> None:
    admission._remembered.clear()
    for i in range(5):
        admit(pod(name=f"p{i}", labels={"i": str(i)}), api_version="v1", kind="Pod")
    assert len(admission._remembered) == 1
    admit(with_spec(pod(name="other"), restartPolicy="Never"), api_version="v1", kind="Pod")
    assert len(admission._remembered) == 2

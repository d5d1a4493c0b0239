"""apiserver.apply: FieldsV1 sets, field ownership, server-side apply merge and conflicts."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from apiserver.apply import (
    BEFORE_FIRST_APPLY,
    FieldSet,
    _changes,
    _compare,
    _fields_v1,
    _leaves,
    _schema,
    apply,
    fields_of,
    path_string,
    record_update,
)
from machinery.errors import BadRequest, Conflict, Invalid

V = "apps/v1"


def deployment(replicas: int | None = 2, **container: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "selector": {"matchLabels": {"app": "web"}},
        "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": "nginx", **container}]},
        },
    }
    if replicas is not None:
        spec["replicas"] = replicas
    return {"apiVersion": V, "kind": "Deployment", "metadata": {"name": "web"}, "spec": spec}


def entries(obj: dict[str, Any]) -> dict[tuple[str, str], FieldSet]:
    return {
        (e["manager"], e["operation"]): FieldSet.from_fields_v1(e["fieldsV1"])
        for e in obj["metadata"].get("managedFields", [])
    }


def ssa(current: dict | None, applied: dict, manager: str = "kubectl", **kw: Any) -> dict:
    kw.setdefault("kind", "Deployment")
    kw.setdefault("force", False)
    return apply(current, applied, manager=manager, api_version=V, now="2024-01-01T00:00:00Z", **kw)


def update(old: dict | None, new: dict, manager: str, **kw: Any) -> dict:
    kw.setdefault("kind", "Deployment")
    return record_update(old, new, manager=manager, api_version=V, now="2024-01-02T00:00:00Z", **kw)


CONTAINER = ("f:spec", "f:template", "f:spec", "f:containers", 'k:{"name":"c"}')
REPLICAS = ("f:spec", "f:replicas")

# --- FieldSet <-> FieldsV1 ------------------------------------------------------------------

FIELDS_V1 = {
    "map-leaves": (
        {"f:metadata": {"f:labels": {"f:app": {}}}},
        {("f:metadata", "f:labels", "f:app")},
    ),
    "keyed-item-and-children": (
        {"f:spec": {"f:containers": {'k:{"name":"c"}': {".": {}, "f:image": {}}}}},
        {
            ("f:spec", "f:containers", 'k:{"name":"c"}'),
            ("f:spec", "f:containers", 'k:{"name":"c"}', "f:image"),
        },
    ),
    "set-values": (
        {"f:metadata": {"f:finalizers": {'v:"a"': {}, 'v:"b"': {}}}},
        {("f:metadata", "f:finalizers", 'v:"a"'), ("f:metadata", "f:finalizers", 'v:"b"')},
    ),
    "index": ({"f:args": {"i:0": {}}}, {("f:args", "i:0")}),
}


@pytest.mark.parametrize(("wire", "paths"), FIELDS_V1.values(), ids=FIELDS_V1)
def test_fields_v1_round_trip(wire: dict, paths: set) -> None:
    parsed = FieldSet.from_fields_v1(wire)
    assert parsed.paths == paths
    assert parsed.to_fields_v1() == wire
    assert FieldSet.from_fields_v1(parsed.to_fields_v1()) == parsed


def test_fields_v1_normalises_keys_and_orders_dot_first() -> None:
    parsed = FieldSet.from_fields_v1({"f:l": {'k:{ "b": 1, "a": "x" }': {"f:z": {}, ".": {}}}})
    assert parsed.paths == {("f:l", 'k:{"a":"x","b":1}'), ("f:l", 'k:{"a":"x","b":1}', "f:z")}
    assert list(parsed.to_fields_v1()["f:l"]['k:{"a":"x","b":1}']) == [".", "f:z"]


@pytest.mark.parametrize("bad", [{"x:y": {}}, {"f:a": []}, {".": {}}, {'k:"s"': {}}])
def test_fields_v1_rejects_malformed(bad: dict) -> None:
    with pytest.raises(ValueError):
        FieldSet.from_fields_v1(bad)


PATHS = {
    "field": (REPLICAS, ".spec.replicas"),
    "keyed": ((*CONTAINER, "f:image"), '.spec.template.spec.containers[name="c"].image'),
    "set": (("f:metadata", "f:finalizers", 'v:"x"'), '.metadata.finalizers[="x"]'),
    "index": (("f:args", "i:2"), ".args[2]"),
}


@pytest.mark.parametrize(("path", "text"), PATHS.values(), ids=PATHS)
def test_path_string(path: tuple, text: str) -> None:
    assert path_string(path) == text


# --- fields_of ------------------------------------------------------------------------------


def test_fields_of_builtin_uses_merge_keys_and_skips_server_fields() -> None:
    obj = deployment(env=[{"name": "A", "value": "1"}], ports=[{"containerPort": 80}])
    obj["metadata"].update(uid="u", resourceVersion="7", generation=1, namespace="ns")
    obj["metadata"]["finalizers"] = ["f1"]
    obj["status"] = {"replicas": 1}
    got = fields_of(obj, "Deployment", status_subresource=True)
    assert got.paths == {
        ("f:metadata", "f:finalizers", 'v:"f1"'),
        REPLICAS,
        ("f:spec", "f:selector", "f:matchLabels", "f:app"),
        ("f:spec", "f:template", "f:metadata", "f:labels", "f:app"),
        CONTAINER,
        (*CONTAINER, "f:name"),
        (*CONTAINER, "f:image"),
        (*CONTAINER, "f:env", 'k:{"name":"A"}'),
        (*CONTAINER, "f:env", 'k:{"name":"A"}', "f:name"),
        (*CONTAINER, "f:env", 'k:{"name":"A"}', "f:value"),
        (*CONTAINER, "f:ports", 'k:{"containerPort":80}'),
        (*CONTAINER, "f:ports", 'k:{"containerPort":80}', "f:containerPort"),
    }
    with_status = fields_of(obj, "Deployment", status_subresource=False)
    assert ("f:status", "f:replicas") in with_status


def test_fields_of_atomic_lists_and_custom_resources() -> None:
    obj = deployment(args=["a", "b"])
    assert (*CONTAINER, "f:args") in fields_of(obj, "Deployment")
    cr = {"apiVersion": "x/v1", "kind": "Deployment", "spec": {"items": [{"name": "a"}], "m": {}}}
    assert fields_of(cr, None).paths == {("f:spec", "f:items"), ("f:spec", "f:m")}


# --- apply ----------------------------------------------------------------------------------


def test_first_apply_creates_ownership() -> None:
    applied = deployment()
    obj = ssa(None, applied)
    assert obj["spec"] == applied["spec"]
    [entry] = obj["metadata"]["managedFields"]
    assert {k: v for k, v in entry.items() if k != "fieldsV1"} == {
        "manager": "kubectl",
        "operation": "Apply",
        "apiVersion": V,
        "time": "2024-01-01T00:00:00Z",
        "fieldsType": "FieldsV1",
    }
    assert FieldSet.from_fields_v1(entry["fieldsV1"]) == fields_of(applied, "Deployment")
    assert applied == deployment(), "input mutated"


def test_reapply_without_a_field_removes_it() -> None:
    first = ssa(None, deployment(env=[{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]))
    second = ssa(first, deployment(replicas=None, env=[{"name": "A", "value": "1"}]))
    assert "replicas" not in second["spec"]
    assert second["spec"]["template"]["spec"]["containers"][0]["env"] == [
        {"name": "A", "value": "1"}
    ]
    assert REPLICAS not in entries(second)["kubectl", "Apply"]


def test_reapply_keeps_a_dropped_field_another_manager_owns() -> None:
    first = ssa(None, deployment())
    shared = ssa(first, deployment(), manager="other")  # same values: shared ownership
    assert REPLICAS in entries(shared)["other", "Apply"]
    dropped = ssa(shared, deployment(replicas=None))
    assert dropped["spec"]["replicas"] == 2


def test_two_appliers_own_different_fields() -> None:
    first = ssa(None, deployment())
    extra = {"apiVersion": V, "kind": "Deployment", "metadata": {"name": "web"}}
    extra["metadata"]["labels"] = {"team": "x"}
    both = ssa(first, extra, manager="labeler")
    assert both["metadata"]["labels"] == {"team": "x"}
    assert both["spec"] == first["spec"]
    owned = entries(both)
    assert owned["labeler", "Apply"].paths == {("f:metadata", "f:labels", "f:team")}
    assert REPLICAS in owned["kubectl", "Apply"]
    # the labeler drops its label: only its field goes
    gone = ssa(
        both,
        {"apiVersion": V, "kind": "Deployment", "metadata": {"name": "web"}},
        manager="labeler",
    )
    assert "labels" not in gone["metadata"]
    assert gone["spec"] == first["spec"]
    assert ("labeler", "Apply") not in entries(gone)


def test_conflict_with_update_manager() -> None:
    applied = ssa(None, deployment())
    scaled = copy.deepcopy(applied)
    scaled["spec"]["replicas"] = 5
    scaled = update(applied, scaled, "kubectl-scale")
    with pytest.raises(Conflict) as err:
        ssa(scaled, deployment())
    status = err.value.status()
    assert status["code"] == 409 and status["reason"] == "Conflict"
    assert status["message"] == (
        'Apply failed with 1 conflict: conflict with "kubectl-scale" using apps/v1: .spec.replicas'
    )
    assert status["details"]["causes"] == [
        {
            "reason": "FieldManagerConflict",
            "message": 'conflict with "kubectl-scale" using apps/v1',
            "field": ".spec.replicas",
        }
    ]


def test_conflicts_with_several_fields_and_managers() -> None:
    base = ssa(None, deployment())
    other = deployment(replicas=3)
    other["spec"]["template"]["spec"]["containers"][0]["image"] = "busybox"
    with pytest.raises(Conflict) as err:
        ssa(base, other, manager="helm")
    assert err.value.message == (
        'Apply failed with 2 conflicts: conflicts with "kubectl":\n'
        '- .spec.replicas\n- .spec.template.spec.containers[name="c"].image'
    )
    assert [c["field"] for c in err.value.details["causes"]] == [
        ".spec.replicas",
        '.spec.template.spec.containers[name="c"].image',
    ]


def test_force_takes_ownership() -> None:
    applied = ssa(None, deployment())
    scaled = copy.deepcopy(applied)
    scaled["spec"]["replicas"] = 5
    scaled = update(applied, scaled, "kubectl-scale")
    forced = ssa(scaled, deployment(replicas=3), force=True)
    assert forced["spec"]["replicas"] == 3
    owned = entries(forced)
    assert REPLICAS in owned["kubectl", "Apply"]
    assert ("kubectl-scale", "Update") not in owned  # its only field was taken


def test_same_value_is_not_a_conflict() -> None:
    applied = ssa(None, deployment())
    scaled = copy.deepcopy(applied)
    scaled["spec"]["replicas"] = 5
    scaled = update(applied, scaled, "kubectl-scale")
    agreed = ssa(scaled, deployment(replicas=5))
    assert agreed["spec"]["replicas"] == 5
    owned = entries(agreed)
    assert REPLICAS in owned["kubectl", "Apply"] and REPLICAS in owned["kubectl-scale", "Update"]


LIST_MERGES = {
    "containers-by-name": (
        {"containers": [{"name": "a", "image": "x"}, {"name": "side", "image": "s"}]},
        {"containers": [{"name": "a", "image": "y"}]},
        [{"name": "a", "image": "y"}, {"name": "side", "image": "s"}],
    ),
    "env-by-name": (
        {"containers": [{"name": "a", "env": [{"name": "X", "value": "1"}]}]},
        {"containers": [{"name": "a", "env": [{"name": "Y", "value": "2"}]}]},
        [{"name": "a", "env": [{"name": "X", "value": "1"}, {"name": "Y", "value": "2"}]}],
    ),
    "ports-by-containerPort": (
        {"containers": [{"name": "a", "ports": [{"containerPort": 80, "name": "http"}]}]},
        {"containers": [{"name": "a", "ports": [{"containerPort": 443}, {"containerPort": 80}]}]},
        [{"name": "a", "ports": [{"containerPort": 443}, {"containerPort": 80, "name": "http"}]}],
    ),
    "atomic-args-replaced": (
        {"containers": [{"name": "a", "args": ["1", "2"]}]},
        {"containers": [{"name": "a", "args": ["3"]}]},
        [{"name": "a", "args": ["3"]}],
    ),
}


def pod(spec: dict) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": spec}


@pytest.mark.parametrize(("theirs", "mine", "want"), LIST_MERGES.values(), ids=LIST_MERGES)
def test_lists_merge_by_key(theirs: dict, mine: dict, want: list) -> None:
    live = ssa(None, pod(theirs), manager="them", kind="Pod")
    merged = ssa(live, pod(mine), manager="me", kind="Pod", force=True)
    assert merged["spec"]["containers"] == want


def test_removed_keyed_item_goes_unless_someone_owns_its_fields() -> None:
    two = {"containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "y"}]}
    live = ssa(None, pod(two), kind="Pod")
    one = ssa(live, pod({"containers": [{"name": "a", "image": "x"}]}), kind="Pod")
    assert [c["name"] for c in one["spec"]["containers"]] == ["a"]
    # someone else set b's image too: b stays, owned by them
    shared = ssa(live, pod({"containers": [{"name": "b", "image": "y"}]}), "x", kind="Pod")
    kept = ssa(shared, pod({"containers": [{"name": "a", "image": "x"}]}), kind="Pod")
    assert [c["name"] for c in kept["spec"]["containers"]] == ["a", "b"]


def test_atomic_list_conflicts_as_a_whole() -> None:
    live = ssa(None, pod({"containers": [{"name": "a", "args": ["1"]}]}), kind="Pod")
    with pytest.raises(Conflict) as err:
        ssa(live, pod({"containers": [{"name": "a", "args": ["2"]}]}), "me", kind="Pod")
    assert err.value.details["causes"][0]["field"] == '.spec.containers[name="a"].args'


def test_custom_resource_maps_merge_lists_atomic() -> None:
    def cr(spec: dict) -> dict:
        return {
            "apiVersion": "ex.com/v1",
            "kind": "Widget",
            "metadata": {"name": "w"},
            "spec": spec,
        }

    live = ssa(None, cr({"size": 1, "items": [{"name": "a"}]}), "one", kind=None)
    both = ssa(live, cr({"color": "red"}), "two", kind=None)
    assert both["spec"] == {"size": 1, "items": [{"name": "a"}], "color": "red"}
    with pytest.raises(Conflict) as err:
        ssa(both, cr({"items": [{"name": "b"}]}), "two", kind=None)
    assert err.value.details["causes"][0]["field"] == ".spec.items"
    forced = ssa(both, cr({"items": [{"name": "b"}]}), "two", kind=None, force=True)
    assert forced["spec"]["items"] == [{"name": "b"}]
    assert entries(forced)["two", "Apply"].paths == {("f:spec", "f:items")}


def test_apply_to_object_without_managed_fields_seeds_before_first_apply() -> None:
    live = deployment()
    result = ssa(live, deployment(replicas=2))
    owned = entries(result)
    assert REPLICAS in owned[BEFORE_FIRST_APPLY, "Update"]
    assert REPLICAS in owned["kubectl", "Apply"]


def test_noop_reapply_keeps_time() -> None:
    first = ssa(None, deployment())
    again = apply(
        first,
        deployment(),
        manager="kubectl",
        kind="Deployment",
        force=False,
        api_version=V,
        now="2030-01-01T00:00:00Z",
    )
    assert again == first


@pytest.mark.parametrize(
    ("applied", "error"),
    [
        ({"metadata": {"managedFields": [{"manager": "x"}]}}, BadRequest),
        (pod({"containers": [{"image": "nameless"}]}), Invalid),
        (pod({"containers": [{"name": "a"}, {"name": "a"}]}), Invalid),
    ],
    ids=["managed-fields-in-body", "missing-merge-key", "duplicate-merge-key"],
)
def test_apply_rejects_bad_configuration(applied: dict, error: type[Exception]) -> None:
    with pytest.raises(error):
        ssa(None, applied, kind="Pod")


def test_apply_keeps_server_fields_and_status() -> None:
    live = ssa(None, deployment())
    live["metadata"].update(uid="u1", resourceVersion="9")
    live["status"] = {"replicas": 2}
    body = deployment()
    body["metadata"]["uid"] = "evil"
    body["status"] = {"replicas": 99}
    result = ssa(live, body, status_subresource=True)
    assert result["metadata"]["uid"] == "u1" and result["status"] == {"replicas": 2}


# --- record_update --------------------------------------------------------------------------


def test_record_update_on_create_owns_everything() -> None:
    obj = update(None, deployment(), "kubectl-create")
    [entry] = obj["metadata"]["managedFields"]
    assert (entry["manager"], entry["operation"], entry["time"]) == (
        "kubectl-create",
        "Update",
        "2024-01-02T00:00:00Z",
    )
    assert FieldSet.from_fields_v1(entry["fieldsV1"]) == fields_of(deployment(), "Deployment")


def test_record_update_moves_ownership_and_drops_removed() -> None:
    live = ssa(None, deployment(env=[{"name": "A", "value": "1"}]))
    edited = copy.deepcopy(live)
    container = edited["spec"]["template"]["spec"]["containers"][0]
    container["image"] = "busybox"
    del container["env"]
    result = update(live, edited, "kubectl-edit")
    owned = entries(result)
    assert owned["kubectl-edit", "Update"].paths == {(*CONTAINER, "f:image")}
    applier = owned["kubectl", "Apply"]
    assert (*CONTAINER, "f:image") not in applier
    assert not any("f:env" in p for p in applier.paths)
    assert REPLICAS in applier


def test_record_update_without_change_adds_no_entry() -> None:
    live = ssa(None, deployment())
    assert update(live, copy.deepcopy(live), "nobody") == live


def test_record_update_status_subresource() -> None:
    live = ssa(None, deployment(), status_subresource=True)
    new = copy.deepcopy(live)
    new["status"] = {"replicas": 2}
    result = update(live, new, "controller", subresource="status", status_subresource=True)
    entry = next(e for e in result["metadata"]["managedFields"] if e["manager"] == "controller")
    assert entry["subresource"] == "status"
    assert FieldSet.from_fields_v1(entry["fieldsV1"]).paths == {("f:status", "f:replicas")}
    # on the main resource the status is never owned
    main = update(live, new, "someone", status_subresource=True)
    assert main["metadata"]["managedFields"] == live["metadata"]["managedFields"]


def test_record_update_client_resets_managed_fields() -> None:
    live = ssa(None, deployment())
    new = copy.deepcopy(live)
    new["metadata"]["managedFields"] = [{}]
    assert "managedFields" not in update(live, new, "x")["metadata"]


def test_reapply_without_a_list_or_map_removes_it_whole() -> None:
    first = ssa(
        None, deployment(env=[{"name": "A", "value": "1"}], resources={"limits": {"c": "1"}})
    )
    second = ssa(first, deployment())
    assert second["spec"]["template"]["spec"]["containers"] == [{"name": "c", "image": "nginx"}]


# --- the one-walk shortcuts of record_update agree with the leaf maps --------------------------

_SCALARS = st.sampled_from([0, 1, 1.0, True, False, None, "", "a", "1"])
_JSON = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from("abc"), inner),
    max_leaves=8,
)
_CONTAINER = st.fixed_dictionaries(
    {"image": _SCALARS, "x": _JSON},
    optional={"name": st.sampled_from(["c", "d"]), "env": st.lists(st.just({"name": "E"}))},
)
_OBJECT = st.fixed_dictionaries(
    {"apiVersion": st.just(V), "kind": st.just("Deployment")},
    optional={
        "metadata": st.fixed_dictionaries(
            {"name": st.just("web")},
            optional={
                "uid": st.just("u"),
                "labels": st.dictionaries(st.sampled_from("xy"), st.sampled_from(["1", "2"])),
                "finalizers": st.lists(st.sampled_from(["f", "g"]), max_size=3),
            },
        ),
        "spec": st.fixed_dictionaries(
            {},
            optional={
                "template": st.fixed_dictionaries(
                    {"spec": st.fixed_dictionaries({"containers": st.lists(_CONTAINER)})}
                ),
                "x": _JSON,
            },
        ),
        "status": _JSON,
        "extra": _JSON,
    },
)


@settings(max_examples=300, deadline=None)
@given(
    old=_OBJECT,
    new=_OBJECT,
    kind=st.sampled_from(["Deployment", None]),
    status_subresource=st.booleans(),
)
def test_one_walk_shortcuts_agree_with_leaves(
    old: dict, new: dict, kind: str | None, status_subresource: bool
) -> None:
    schema = _schema(kind, status_subresource, None)
    assert _fields_v1(new, schema) == FieldSet.of(_leaves(new, schema)).to_fields_v1()
    assert _changes(old, new, schema) == _compare(_leaves(old, schema), _leaves(new, schema))


@settings(max_examples=100, deadline=None)
@given(obj=_OBJECT, kind=st.sampled_from(["Deployment", None]))
def test_remembered_spec_trees_are_fresh_copies(obj: dict, kind: str | None) -> None:
    schema = _schema(kind, False, None)
    first = _fields_v1(obj, schema)  # walks (or reads the remembered tree)
    expected = copy.deepcopy(first)
    for node in first.values():
        if isinstance(node, dict):
            node["f:poisoned"] = {}
    assert _fields_v1(obj, schema) == expected == FieldSet.of(_leaves(obj, schema)).to_fields_v1()

"""Fuzzing a real API server on loopback with hypothesis-generated manifests and patches.

Invariants, for every request: no 5xx; every non-2xx is a ``Status`` whose reason is one of
Kubernetes' and whose code is the HTTP status; a failed write leaves the object exactly as it
was. Bounded in count and in time: at most ``TUGBOAT_FUZZ_EXAMPLES`` examples per test, each
within ``EXAMPLE_DEADLINE`` (a hung request fails the test), and examples after
``TUGBOAT_FUZZ_SECONDS`` of a test's run are skipped (hypothesis has no time budget of its own).

schemathesis against ``/openapi/v3`` was considered and left out: with random path parameters
most of its requests end in 404 before reaching a registry, our OpenAPI is generated from the
same pydantic types the server validates with (so schema-shaped bodies test little that the
manifest mutator below does not), and it is a large dependency.
"""

from __future__ import annotations

import functools
import json
import os
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import ApiServerProcess, start_apiserver

NS = "fuzz"
REASONS = {
    "BadRequest",
    "Unauthorized",
    "Forbidden",
    "NotFound",
    "MethodNotAllowed",
    "NotAcceptable",
    "AlreadyExists",
    "Conflict",
    "Expired",
    "Gone",
    "RequestEntityTooLarge",
    "UnsupportedMediaType",
    "Invalid",
    "TooManyRequests",
}
PATCH_TYPES = {
    "merge": "application/merge-patch+json",
    "json": "application/json-patch+json",
    "strategic": "application/strategic-merge-patch+json",
}
EXAMPLE_DEADLINE = timedelta(seconds=20)  # one example is one or two requests on loopback
FUZZ = settings(
    # TUGBOAT_FUZZ_EXAMPLES=2000 TUGBOAT_FUZZ_SECONDS=1200 for a longer hunt; CI runs the
    # bounded defaults
    max_examples=int(os.environ.get("TUGBOAT_FUZZ_EXAMPLES", "200")),
    deadline=EXAMPLE_DEADLINE,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def within_budget(fn: Callable[..., None]) -> Callable[..., None]:
    """Skip the examples that come after ``TUGBOAT_FUZZ_SECONDS`` of the test's run (counted
    from its first example), except once one failed: hypothesis then replays examples to
    shrink the failure, and those must run."""
    seconds = float(os.environ.get("TUGBOAT_FUZZ_SECONDS", "120"))
    started: float | None = None
    failed = False

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> None:
        nonlocal started, failed
        started = started if started is not None else time.monotonic()
        if not failed and time.monotonic() - started > seconds:
            return
        try:
            fn(*args, **kwargs)
        except BaseException:
            failed = True
            raise

    return run


# -- what valid objects look like --------------------------------------------------------------
CONTAINER = {"name": "c", "image": "busybox:1.36", "ports": [{"containerPort": 80}]}
BASES: dict[str, tuple[str, dict[str, Any]]] = {
    "Pod": (
        f"/api/v1/namespaces/{NS}/pods",
        {"apiVersion": "v1", "kind": "Pod", "spec": {"containers": [CONTAINER]}},
    ),
    "Deployment": (
        f"/apis/apps/v1/namespaces/{NS}/deployments",
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "f"}},
                "template": {
                    "metadata": {"labels": {"app": "f"}},
                    "spec": {"containers": [CONTAINER]},
                },
            },
        },
    ),
    "Service": (
        f"/api/v1/namespaces/{NS}/services",
        {
            "apiVersion": "v1",
            "kind": "Service",
            "spec": {"selector": {"app": "f"}, "ports": [{"port": 80, "targetPort": 8080}]},
        },
    ),
    "ConfigMap": (
        f"/api/v1/namespaces/{NS}/configmaps",
        {"apiVersion": "v1", "kind": "ConfigMap", "data": {"k": "v"}},
    ),
    "Widget": (
        f"/apis/fuzz.example.com/v1/namespaces/{NS}/widgets",
        {
            "apiVersion": "fuzz.example.com/v1",
            "kind": "Widget",
            "spec": {"size": 3, "tags": ["a"], "nested": {"on": True}},
        },
    ),
}
# A custom resource: openAPIV3Schema validation and pruning instead of pydantic types.
CRD = {
    "metadata": {"name": "widgets.fuzz.example.com"},
    "spec": {
        "group": "fuzz.example.com",
        "scope": "Namespaced",
        "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "required": ["size"],
                                "properties": {
                                    "size": {"type": "integer", "minimum": 1, "maximum": 10},
                                    "tags": {"type": "array", "items": {"type": "string"}},
                                    "nested": {
                                        "type": "object",
                                        "x-kubernetes-preserve-unknown-fields": True,
                                    },
                                },
                            },
                            "status": {
                                "type": "object",
                                "x-kubernetes-preserve-unknown-fields": True,
                            },
                        },
                    }
                },
            }
        ],
    },
}

# -- strategies --------------------------------------------------------------------------------
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
    st.sampled_from(["", "-1", "80", "100m", "1Gi", "TCP", "Always", "None", "a" * 300]),
)
keys = st.one_of(
    st.sampled_from(
        ["name", "image", "spec", "metadata", "ports", "labels", "replicas", "selector", "$patch"]
    ),
    st.text(max_size=12),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=3),
    max_leaves=8,
)
valid_names = st.from_regex(r"[a-z][a-z0-9-]{0,20}[a-z0-9]", fullmatch=True)
names = st.one_of(  # mostly valid, so that many creates get past the name check
    valid_names, valid_names, valid_names, st.text(max_size=70), st.just("x" * 254), st.just("")
)


def _paths(obj: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path to a value inside ``obj`` (dict keys and list indexes)."""
    out = [prefix]
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out += _paths(v, (*prefix, i))
    return out


def _set(obj: Any, path: tuple, value: Any) -> Any:
    if not path:
        return value
    parent = obj
    for step in path[:-1]:
        parent = parent[step]
    parent[path[-1]] = value
    return obj


@st.composite
def mutated(draw: st.DrawFn, base: Any) -> Any:
    """``base`` with a few values replaced by anything, keys added or removed."""
    obj = json.loads(json.dumps(base))
    for _ in range(draw(st.integers(0, 3))):
        path = draw(st.sampled_from(_paths(obj)))
        action = draw(st.sampled_from(["replace", "extra", "drop"]))
        target = obj
        for step in path:
            target = target[step]
        if action == "extra" and isinstance(target, dict):
            target[draw(keys)] = draw(values)
        elif action == "drop" and path:
            parent = obj
            for step in path[:-1]:
                parent = parent[step]
            del parent[path[-1]]
        else:
            obj = _set(obj, path, draw(values))
    return obj


@st.composite
def manifests(draw: st.DrawFn) -> tuple[str, Any]:
    kind = draw(st.sampled_from(sorted(BASES)))
    path, base = BASES[kind]
    body = json.loads(json.dumps(base))
    body["metadata"] = {"name": draw(names)}
    if draw(st.booleans()):
        body["metadata"]["labels"] = draw(
            st.dictionaries(st.text(max_size=70), scalars, max_size=2)
        )
    return path, draw(mutated(body))


json_patch_ops = st.lists(
    st.fixed_dictionaries(
        {
            "op": st.sampled_from(["add", "remove", "replace", "move", "copy", "test", "bogus"]),
            "path": st.sampled_from(
                [
                    "/spec",
                    "/spec/replicas",
                    "/metadata/labels",
                    "/metadata/labels/a",
                    "/data/k",
                    "/spec/containers/0/image",
                    "/spec/ports/0/port",
                    "/x",
                    "",
                    "/",
                    "nope",
                    "/-",
                ]
            ),
        },
        optional={"value": values, "from": st.sampled_from(["/spec", "/metadata/name", "/zz"])},
    ),
    max_size=4,
)


@st.composite
def patches(draw: st.DrawFn, current: dict[str, Any]) -> tuple[str, Any]:
    ptype = draw(st.sampled_from(sorted(PATCH_TYPES)))  # custom resources refuse strategic: 415
    if ptype == "json":
        return ptype, draw(st.one_of(json_patch_ops, values))
    shaped = {k: v for k, v in current.items() if k in ("metadata", "spec", "data")}
    shaped["metadata"] = {
        k: v for k, v in shaped.get("metadata", {}).items() if k in ("labels", "annotations")
    }
    body = draw(st.one_of(mutated(shaped), values))
    if ptype == "strategic" and isinstance(body, dict) and draw(st.booleans()):
        body["$setElementOrder/containers"] = draw(values)
        body[draw(st.sampled_from(["$patch", "$retainKeys", "$deleteFromPrimitiveList/x"]))] = draw(
            values
        )
    return ptype, body


# -- the server and the checks ------------------------------------------------------------------
@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServerProcess]:
    s = start_apiserver(tmp_path_factory.mktemp("fuzz"))
    with httpx.Client(base_url=s.url) as c:
        assert c.post("/api/v1/namespaces", json={"metadata": {"name": NS}}).status_code == 201
        crds = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
        assert c.post(crds, json=CRD).status_code == 201
        for kind, (path, base) in BASES.items():
            body = {**base, "metadata": {"name": f"fixed-{kind.lower()}"}}
            assert c.post(path, json=body).status_code == 201, kind
    yield s
    s.stop()


@pytest.fixture(scope="module")
def http(server: ApiServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as c:
        yield c


def _encode(body: Any) -> bytes:
    return json.dumps(body).encode()  # the json module writes integers of any size


def _check(r: httpx.Response) -> None:
    assert r.status_code < 500, f"{r.request.method} {r.request.url}: {r.text}"
    if r.status_code >= 300:
        status = r.json()
        assert status["kind"] == "Status" and status["apiVersion"] == "v1", status
        assert status["status"] == "Failure" and isinstance(status["message"], str), status
        assert status["reason"] in REASONS and status["code"] == r.status_code, status


@FUZZ
@given(manifest=manifests(), validation=st.sampled_from(["Strict", "Warn", "Ignore", None]))
@within_budget
def test_creates(http, manifest, validation):
    path, body = manifest
    params = {"fieldValidation": validation} if validation else {}
    before = http.get(path).json()["metadata"]["resourceVersion"]
    r = http.post(path, content=_encode(body), params=params)
    _check(r)
    if r.status_code == 201:
        assert http.delete(f"{path}/{r.json()['metadata']['name']}").status_code == 200
    else:
        # nothing was written: the collection did not move
        assert http.get(path).json()["metadata"]["resourceVersion"] == before


@FUZZ
@given(data=st.data(), kind=st.sampled_from(sorted(BASES)))
@within_budget
def test_patches_and_updates(http, data, kind):
    path, base = BASES[kind]
    name = f"fixed-{kind.lower()}"
    obj_path = f"{path}/{name}"
    # drawn from the static manifest, so that a replayed example draws the same values
    shape = json.loads(json.dumps({**base, "metadata": {"name": name, "labels": {"a": "b"}}}))
    current = http.get(obj_path).json()
    if data.draw(st.booleans(), label="put"):
        body = data.draw(mutated(shape), label="put body")
        r = http.put(obj_path, content=_encode(body))
    else:
        ptype, body = data.draw(patches(shape), label="patch")
        r = http.patch(
            obj_path, content=_encode(body), headers={"Content-Type": PATCH_TYPES[ptype]}
        )
    _check(r)
    if r.status_code >= 300:
        assert http.get(obj_path).json() == current

"""The REST client, kubeconfig handling and the event recorder.

Wire details (URLs, parameters, content types, error mapping) are checked against a recording
transport or the fake; behaviour tests use ``backend`` and also run against a real server with
``TUGBOAT_TEST_SERVER`` (see tests/unit/fake_apiserver.py).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import re
import shutil
import ssl
import stat
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from machinery import errors
from machinery.client import AsyncClient, Client
from machinery.events import EventRecorder
from machinery.kinds import lookup
from machinery.kubeconfig import KubeconfigError, load_kubeconfig, write_kubeconfig
from machinery.workqueue import FakeClock
from tests.unit import fake_apiserver
from tests.unit.fake_apiserver import Backend, FakeApiServer, Recorder, raw_watch_response

PODS = lookup("pods")
NODES = lookup("nodes")
DEPLOYMENTS = lookup("deployments")
CONFIGMAPS = lookup("configmaps")


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    with fake_apiserver.backend(request) as b:
        yield b


@pytest.fixture
def client(backend: Backend) -> Iterator[Client]:
    with backend.client() as c:
        yield c


@pytest.fixture
def rec() -> Recorder:
    return Recorder()


def cm(name: str, ns: str, **labels: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": ns, "labels": labels},
        "data": {"k": "v"},
    }


# -- what goes on the wire -------------------------------------------------------------------

CALLS: list[tuple[str, Callable[[Client], Any], str, str, dict[str, str]]] = [
    (
        "get-namespaced",
        lambda c: c.get(PODS, "p", "ns1"),
        "GET",
        "/api/v1/namespaces/ns1/pods/p",
        {},
    ),
    (
        "get-default-namespace",
        lambda c: c.get(PODS, "p"),
        "GET",
        "/api/v1/namespaces/default/pods/p",
        {},
    ),
    (
        "get-cluster-scoped-ignores-namespace",
        lambda c: c.get(NODES, "n1", "ns1"),
        "GET",
        "/api/v1/nodes/n1",
        {},
    ),
    (
        "get-subresource",
        lambda c: c.get(DEPLOYMENTS, "d", "ns1", subresource="status"),
        "GET",
        "/apis/apps/v1/namespaces/ns1/deployments/d/status",
        {},
    ),
    (
        "list-all-namespaces",
        lambda c: c.list(
            PODS, label_selector="app=web", field_selector="spec.nodeName=n1", limit=5
        ),
        "GET",
        "/api/v1/pods",
        {"labelSelector": "app=web", "fieldSelector": "spec.nodeName=n1", "limit": "5"},
    ),
    (
        "list-page",
        lambda c: c.list(DEPLOYMENTS, "ns1", continue_="tok", resource_version="0"),
        "GET",
        "/apis/apps/v1/namespaces/ns1/deployments",
        {"continue": "tok", "resourceVersion": "0"},
    ),
    (
        "create-namespace-from-object",
        lambda c: c.create(PODS, {"metadata": {"name": "p", "namespace": "objns"}}),
        "POST",
        "/api/v1/namespaces/objns/pods",
        {},
    ),
    (
        "create-dry-run-field-manager",
        lambda c: c.create(CONFIGMAPS, cm("x", "a"), "b", dry_run=True, field_manager="me"),
        "POST",
        "/api/v1/namespaces/b/configmaps",
        {"dryRun": "All", "fieldManager": "me"},
    ),
    (
        "create-subresource",
        lambda c: c.create(
            PODS, {"target": {"name": "n1"}}, "ns1", subresource="binding", name="p"
        ),
        "POST",
        "/api/v1/namespaces/ns1/pods/p/binding",
        {},
    ),
    (
        "update",
        lambda c: c.update(DEPLOYMENTS, {"metadata": {"name": "d", "namespace": "ns1"}}),
        "PUT",
        "/apis/apps/v1/namespaces/ns1/deployments/d",
        {},
    ),
    (
        "update-status",
        lambda c: c.update(NODES, {"metadata": {"name": "n1"}}, subresource="status"),
        "PUT",
        "/api/v1/nodes/n1/status",
        {},
    ),
    ("delete", lambda c: c.delete(PODS, "p", "ns1"), "DELETE", "/api/v1/namespaces/ns1/pods/p", {}),
    (
        "watch",
        lambda c: list(
            c.watch(PODS, "ns1", resource_version="42", timeout_seconds=9, label_selector="a=b")
        ),
        "GET",
        "/api/v1/namespaces/ns1/pods",
        {
            "watch": "true",
            "resourceVersion": "42",
            "allowWatchBookmarks": "true",
            "timeoutSeconds": "9",
            "labelSelector": "a=b",
        },
    ),
    (
        "watch-no-bookmarks",
        lambda c: list(c.watch(NODES, allow_bookmarks=False)),
        "GET",
        "/api/v1/nodes",
        {"watch": "true"},
    ),
]


@pytest.mark.parametrize(
    ("call", "method", "path", "params"), [c[1:] for c in CALLS], ids=[c[0] for c in CALLS]
)
def test_request_line(
    rec: Recorder, call: Callable[[Client], Any], method: str, path: str, params: dict[str, str]
) -> None:
    with rec.client() as c:
        call(c)
    assert rec.last.method == method
    assert rec.last.url.path == path
    assert dict(rec.last.url.params) == params


@pytest.mark.parametrize(
    ("patch_type", "content_type"),
    [
        ("merge", "application/merge-patch+json"),
        ("json", "application/json-patch+json"),
        ("strategic", "application/strategic-merge-patch+json"),
        ("apply", "application/apply-patch+yaml"),
    ],
)
def test_patch_content_type(rec: Recorder, patch_type: str, content_type: str) -> None:
    body: Any = [{"op": "remove", "path": "/x"}] if patch_type == "json" else {"x": None}
    with rec.client() as c:
        c.patch(DEPLOYMENTS, "d", body, "ns1", patch_type=patch_type)
    assert rec.last.method == "PATCH"
    assert rec.last.url.path == "/apis/apps/v1/namespaces/ns1/deployments/d"
    assert rec.last.headers["content-type"] == content_type
    assert orjson.loads(rec.last.content) == body


def test_apply_patch_params(rec: Recorder) -> None:
    with rec.client(user_agent="tug-test") as c:
        c.patch(PODS, "p", {"metadata": {"name": "p"}}, "ns1", patch_type="apply", force=True)
        assert dict(rec.last.url.params) == {"fieldManager": "tug-test", "force": "true"}
        c.patch(PODS, "p", {}, "ns1", patch_type="apply", field_manager="helm", force=False)
        assert dict(rec.last.url.params) == {"fieldManager": "helm", "force": "false"}
        c.patch(PODS, "p", {}, "ns1", subresource="status")
        assert rec.last.url.path == "/api/v1/namespaces/ns1/pods/p/status"
        assert dict(rec.last.url.params) == {}
        with pytest.raises(ValueError, match="unknown patch type"):
            c.patch(PODS, "p", {}, "ns1", patch_type="yaml")


def test_delete_options_body(rec: Recorder) -> None:
    with rec.client() as c:
        c.delete(PODS, "p", "ns1")
        assert rec.last.content == b""
        c.delete(
            PODS,
            "p",
            "ns1",
            propagation_policy="Foreground",
            grace_period_seconds=0,
            preconditions={"uid": "u1"},
        )
    assert orjson.loads(rec.last.content) == {
        "kind": "DeleteOptions",
        "apiVersion": "v1",
        "propagationPolicy": "Foreground",
        "gracePeriodSeconds": 0,
        "preconditions": {"uid": "u1"},
    }
    assert rec.last.headers["content-type"] == "application/json"


def test_headers(rec: Recorder) -> None:
    with rec.client(token="s3cret", user_agent="tug/1") as c:
        c.create(CONFIGMAPS, cm("x", "ns1"))
    assert rec.last.headers["authorization"] == "Bearer s3cret"
    assert rec.last.headers["user-agent"] == "tug/1"
    assert rec.last.headers["accept"] == "application/json"
    assert rec.last.headers["content-type"] == "application/json"
    assert orjson.loads(rec.last.content) == cm("x", "ns1")


def test_no_token_no_authorization(rec: Recorder) -> None:
    with rec.client() as c:
        c.get(PODS, "p", "ns1")
    assert "authorization" not in rec.last.headers


def test_update_and_subresource_create_need_names(rec: Recorder) -> None:
    with rec.client() as c:
        with pytest.raises(ValueError):
            c.update(PODS, {"metadata": {"namespace": "x"}})
        with pytest.raises(ValueError):
            c.create(PODS, {}, "ns1", subresource="binding")
    assert rec.requests == []


# -- errors ----------------------------------------------------------------------------------

STATUS_ERRORS = [
    (400, "BadRequest", errors.BadRequest),
    (401, "Unauthorized", errors.Unauthorized),
    (403, "Forbidden", errors.Forbidden),
    (404, "NotFound", errors.NotFound),
    (405, "MethodNotAllowed", errors.MethodNotAllowed),
    (409, "AlreadyExists", errors.AlreadyExists),
    (409, "Conflict", errors.Conflict),
    (410, "Expired", errors.Gone),
    (410, "Gone", errors.Gone),
    (415, "UnsupportedMediaType", errors.UnsupportedMediaType),
    (422, "Invalid", errors.Invalid),
    # 429 is retried first: test_throttling_gives_up_after_ten_tries
    (500, "InternalError", errors.InternalError),
    (503, "ServiceUnavailable", errors.ServiceUnavailable),
]


@pytest.mark.parametrize(
    ("code", "reason", "exc"), STATUS_ERRORS, ids=[f"{c}-{r}" for c, r, _ in STATUS_ERRORS]
)
def test_status_maps_to_exception(code: int, reason: str, exc: type[errors.ApiError]) -> None:
    fake = FakeApiServer()
    fake.fail(code, reason, message=f"boom {reason}")
    with fake.client() as c, pytest.raises(exc) as info:
        c.get(PODS, "p", "ns1")
    assert type(info.value) is exc
    assert info.value.code == code
    assert info.value.message == f"boom {reason}"


@pytest.mark.parametrize(
    ("code", "body", "exc"),
    [
        (404, b"404 page not found", errors.NotFound),
        (503, b"<html>unavailable</html>", errors.ServiceUnavailable),
        (409, b'{"not": "a status"}', errors.Conflict),
        (502, b"upstream connect error", errors.ApiError),
        (500, b"", errors.InternalError),
    ],
    ids=["404-text", "503-html", "409-json-not-status", "502-unknown-code", "500-empty"],
)
def test_non_status_bodies_map_by_code(code: int, body: bytes, exc: type[errors.ApiError]) -> None:
    rec = Recorder(httpx.Response(code, content=body))
    with rec.client() as c, pytest.raises(exc) as info:
        c.get(PODS, "p", "ns1")
    assert type(info.value) is exc
    assert info.value.code == code
    if body:
        assert body.decode()[:10] in info.value.message


def test_retry_after_is_kept() -> None:
    rec = Recorder(httpx.Response(429, content=b"slow down", headers={"Retry-After": "7"}))
    with rec.client() as c, pytest.raises(errors.TooManyRequests) as info:
        c.request("GET", "/api/v1/pods")  # the escape hatch does not retry
    assert info.value.details["retryAfterSeconds"] == 7


def _throttled(times: int) -> Callable[[httpx.Request], httpx.Response]:
    """A handler answering 429 (Retry-After: 0) ``times`` times, then an empty list."""
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if len(seen) <= times:
            return httpx.Response(429, headers={"Retry-After": "0"}, content=b"busy")
        return httpx.Response(200, json={"kind": "PodList", "items": []})

    handle.seen = seen  # type: ignore[attr-defined]
    return handle


def test_throttled_requests_are_retried() -> None:
    handle = _throttled(3)
    with Client("http://x", transport=httpx.MockTransport(handle)) as c:
        assert c.list(PODS)["kind"] == "PodList"
    assert len(handle.seen) == 4  # type: ignore[attr-defined]


def test_throttling_gives_up_after_ten_tries() -> None:
    handle = _throttled(100)
    with (
        Client("http://x", transport=httpx.MockTransport(handle)) as c,
        pytest.raises(errors.TooManyRequests),
    ):
        c.list(PODS)
    assert len(handle.seen) == 10  # type: ignore[attr-defined]


async def test_async_throttled_requests_are_retried() -> None:
    handle = _throttled(2)
    async with AsyncClient("http://x", transport=httpx.MockTransport(handle)) as c:
        assert (await c.list(PODS))["kind"] == "PodList"
    assert len(handle.seen) == 3  # type: ignore[attr-defined]


def test_request_escape_hatch_raises_mapped_errors(backend: Backend, client: Client) -> None:
    resp = client.request("GET", CONFIGMAPS.path(backend.namespace))
    assert resp.status_code == 200
    assert resp.json()["items"] == []
    with pytest.raises(errors.NotFound):
        client.request("GET", CONFIGMAPS.path(backend.namespace, "missing"))


# -- behaviour (fake or real server) ---------------------------------------------------------


def test_crud_round_trip(backend: Backend, client: Client) -> None:
    ns = backend.namespace
    created = client.create(CONFIGMAPS, cm("one", ns, app="web"))
    assert created["metadata"]["uid"]
    rv1 = created["metadata"]["resourceVersion"]
    got = client.get(CONFIGMAPS, "one", ns)
    assert got["data"] == {"k": "v"}

    got["data"] = {"k": "changed"}
    updated = client.update(CONFIGMAPS, got)
    assert updated["data"] == {"k": "changed"}
    assert updated["metadata"]["resourceVersion"] != rv1

    patched = client.patch(CONFIGMAPS, "one", {"metadata": {"labels": {"tier": "x"}}}, ns)
    assert patched["metadata"]["labels"] == {"app": "web", "tier": "x"}
    patched = client.patch(
        CONFIGMAPS,
        "one",
        [{"op": "replace", "path": "/data/k", "value": "j"}],
        ns,
        patch_type="json",
    )
    assert patched["data"] == {"k": "j"}
    patched = client.patch(CONFIGMAPS, "one", {"data": {"s": "t"}}, ns, patch_type="strategic")
    assert patched["data"] == {"k": "j", "s": "t"}

    client.delete(CONFIGMAPS, "one", ns)
    with pytest.raises(errors.NotFound):
        client.get(CONFIGMAPS, "one", ns)


def test_write_conflicts(backend: Backend, client: Client) -> None:
    ns = backend.namespace
    first = client.create(CONFIGMAPS, cm("c", ns))
    with pytest.raises(errors.AlreadyExists):
        client.create(CONFIGMAPS, cm("c", ns))
    client.patch(CONFIGMAPS, "c", {"data": {"k": "newer"}}, ns)
    stale = {**first, "data": {"k": "stale"}}
    with pytest.raises(errors.Conflict) as info:
        client.update(CONFIGMAPS, stale)
    assert not isinstance(info.value, errors.AlreadyExists)
    with pytest.raises(errors.Invalid):
        client.patch(
            CONFIGMAPS,
            "c",
            [{"op": "test", "path": "/data/k", "value": "nope"}],
            ns,
            patch_type="json",
        )
    with pytest.raises(errors.Conflict):
        client.delete(CONFIGMAPS, "c", ns, preconditions={"uid": "not-the-uid"})
    with pytest.raises(errors.NotFound):
        client.delete(CONFIGMAPS, "missing", ns)


def test_dry_run_does_not_store(backend: Backend, client: Client) -> None:
    out = client.create(CONFIGMAPS, cm("dry", backend.namespace), dry_run=True)
    assert out["metadata"]["name"] == "dry"
    with pytest.raises(errors.NotFound):
        client.get(CONFIGMAPS, "dry", backend.namespace)


def test_list_selectors_and_list_all_paging(backend: Backend, client: Client) -> None:
    ns = backend.namespace
    for i in range(7):
        client.create(CONFIGMAPS, cm(f"cm-{i}", ns, parity="even" if i % 2 == 0 else "odd"))
    page = client.list(CONFIGMAPS, ns, limit=3)
    assert len(page["items"]) == 3
    assert page["metadata"]["continue"]
    assert page["kind"] == "ConfigMapList"

    merged = client.list_all(CONFIGMAPS, ns, limit=3)
    assert sorted(i["metadata"]["name"] for i in merged["items"]) == [f"cm-{i}" for i in range(7)]
    assert "continue" not in merged["metadata"]
    assert merged["metadata"]["resourceVersion"]

    odd = client.list_all(CONFIGMAPS, ns, label_selector="parity=odd", limit=2)
    assert sorted(i["metadata"]["name"] for i in odd["items"]) == ["cm-1", "cm-3", "cm-5"]
    one = client.list(CONFIGMAPS, ns, field_selector="metadata.name=cm-4")
    assert [i["metadata"]["name"] for i in one["items"]] == ["cm-4"]
    if backend.fake is not None:
        pages = backend.fake.requests_matching("GET", "/configmaps", watch=False)
        assert sum(1 for r in pages if r.url.params.get("limit") == "3") == 1 + 3


def test_expired_continue_token_is_gone(backend: Backend, client: Client) -> None:
    fake = backend.need_fake()
    for i in range(3):
        client.create(CONFIGMAPS, cm(f"x{i}", backend.namespace))
    page = client.list(CONFIGMAPS, backend.namespace, limit=1)
    fake.compact()
    with pytest.raises(errors.Gone):
        client.list(CONFIGMAPS, backend.namespace, limit=1, continue_=page["metadata"]["continue"])


def test_watch_from_a_revision(backend: Backend, client: Client) -> None:
    ns = backend.namespace
    start = client.list(CONFIGMAPS, ns)["metadata"]["resourceVersion"]
    client.create(CONFIGMAPS, cm("w", ns))
    client.patch(CONFIGMAPS, "w", {"data": {"k": "2"}}, ns)
    client.delete(CONFIGMAPS, "w", ns)
    seen = []
    for etype, obj in client.watch(CONFIGMAPS, ns, resource_version=start, timeout_seconds=5):
        if etype != "BOOKMARK":
            seen.append((etype, obj["metadata"]["name"], obj.get("data")))
        if len(seen) == 3:
            break
    assert seen == [
        ("ADDED", "w", {"k": "v"}),
        ("MODIFIED", "w", {"k": "2"}),
        ("DELETED", "w", {"k": "2"}),
    ]


def test_watch_too_old_revision_raises_gone(backend: Backend, client: Client) -> None:
    fake = backend.need_fake()
    old = client.create(CONFIGMAPS, cm("a", backend.namespace))["metadata"]["resourceVersion"]
    client.create(CONFIGMAPS, cm("b", backend.namespace))
    fake.compact()
    with pytest.raises(errors.Gone) as info:
        list(client.watch(CONFIGMAPS, backend.namespace, resource_version=str(int(old) - 1)))
    assert info.value.code == 410
    assert info.value.reason == "Expired"


def test_watch_wire_parsing() -> None:
    lines = [
        b'{"type":"ADDED","object":{"metadata":{"name":"a","resourceVersion":"5"}}}\n',
        b"\n",
        b'{"type":"BOOKMARK","object":{"kind":"Pod","metadata":{"resourceVersion":"9"}}}\n',
        b'{"type":"ERROR","object":{"kind":"Status","status":"Failure","code":500,'
        b'"reason":"InternalError","message":"etcd went away"}}\n',
        b'{"type":"ADDED","object":{"metadata":{"name":"never"}}}\n',
    ]
    rec = Recorder(raw_watch_response(lines))
    seen = []
    with rec.client() as c, pytest.raises(errors.InternalError, match="etcd went away"):
        for event in c.watch(PODS):
            seen.append((event[0], event[1]["metadata"]["resourceVersion"]))
    assert seen == [("ADDED", "5"), ("BOOKMARK", "9")]


def test_watch_http_error_is_raised() -> None:
    fake = FakeApiServer()
    fake.fail(403, "Forbidden", watch=True)
    with fake.client() as c, pytest.raises(errors.Forbidden):
        list(c.watch(PODS))


def test_watch_unknown_event_type_is_an_error() -> None:
    rec = Recorder(raw_watch_response([b'{"type":"WEIRD","object":{}}\n']))
    with rec.client() as c, pytest.raises(errors.ApiError, match="WEIRD"):
        list(c.watch(PODS))


# -- the async client ------------------------------------------------------------------------


async def test_async_crud_and_errors(backend: Backend) -> None:
    ns = backend.namespace
    async with backend.async_client() as c:
        created = await c.create(CONFIGMAPS, cm("a", ns))
        got = await c.get(CONFIGMAPS, "a", ns)
        assert got["metadata"]["uid"] == created["metadata"]["uid"]
        await c.patch(CONFIGMAPS, "a", {"data": {"k": "2"}}, ns)
        with pytest.raises(errors.Conflict):
            await c.update(CONFIGMAPS, created)
        for i in range(4):
            await c.create(CONFIGMAPS, cm(f"p{i}", ns))
        merged = await c.list_all(CONFIGMAPS, ns, limit=2)
        assert len(merged["items"]) == 5
        await c.delete(CONFIGMAPS, "a", ns)
        with pytest.raises(errors.NotFound):
            await c.get(CONFIGMAPS, "a", ns)
        assert (await c.request("GET", CONFIGMAPS.path(ns))).status_code == 200


async def test_async_watch_streams_live_events(backend: Backend) -> None:
    ns = backend.namespace
    async with backend.async_client() as c:
        rv = (await c.list(CONFIGMAPS, ns))["metadata"]["resourceVersion"]
        seen: list[tuple[str, str]] = []
        got_two = asyncio.Event()

        async def consume() -> None:
            watch = c.watch(CONFIGMAPS, ns, resource_version=rv, timeout_seconds=30)
            async with contextlib.aclosing(watch) as events:
                async for etype, obj in events:
                    if etype != "BOOKMARK":
                        seen.append((etype, obj["metadata"]["name"]))
                    if len(seen) == 2:
                        got_two.set()
                        return

        task = asyncio.create_task(consume())
        await c.create(CONFIGMAPS, cm("live1", ns))
        await c.create(CONFIGMAPS, cm("live2", ns))
        await asyncio.wait_for(got_two.wait(), 10)
        await asyncio.wait_for(task, 10)
    assert seen == [("ADDED", "live1"), ("ADDED", "live2")]
    if backend.fake is not None:
        assert backend.fake.open_watches == 0  # closing the iterator closed the stream


async def test_async_watch_error_event() -> None:
    fake = FakeApiServer()
    fake.compact(fake.rv + 10)
    async with fake.async_client() as c:
        with pytest.raises(errors.Gone):
            async for _ in c.watch(PODS, resource_version="1"):
                pass


# -- kubeconfig ------------------------------------------------------------------------------

KUBECONFIG = """
apiVersion: v1
kind: Config
current-context: dev
clusters:
- name: c1
  cluster:
    server: https://10.0.0.1:6443/
    certificate-authority-data: {ca}
- name: c2
  cluster:
    server: http://127.0.0.1:8080
    insecure-skip-tls-verify: true
users:
- name: alice
  user:
    token: tok-alice
- name: bob
  user:
    client-certificate: certs/bob.crt
    client-key: certs/bob.key
- name: carol
  user:
    tokenFile: carol.token
contexts:
- name: dev
  context: {{cluster: c1, user: alice, namespace: team-a}}
- name: ops
  context: {{cluster: c2, user: bob}}
- name: tf
  context: {{cluster: c2, user: carol}}
- name: broken
  context: {{cluster: nowhere, user: alice}}
"""


@pytest.fixture
def kubeconfig(tmp_path: Path) -> Path:
    path = tmp_path / "config"
    path.write_text(KUBECONFIG.format(ca=base64.b64encode(b"PEM BYTES").decode()))
    (tmp_path / "carol.token").write_text("tok-carol\n")
    return path


def test_load_current_context(kubeconfig: Path) -> None:
    cfg = load_kubeconfig(str(kubeconfig))
    assert cfg.server == "https://10.0.0.1:6443"
    assert cfg.token == "tok-alice"
    assert cfg.ca_data == b"PEM BYTES"
    assert cfg.namespace == "team-a"
    assert not cfg.insecure


def test_load_named_context_resolves_relative_files(kubeconfig: Path) -> None:
    cfg = load_kubeconfig(str(kubeconfig), context="ops")
    assert cfg.server == "http://127.0.0.1:8080"
    assert cfg.insecure
    assert cfg.namespace == "default"
    assert cfg.token is None
    assert cfg.cert_file == str(kubeconfig.parent / "certs" / "bob.crt")
    assert cfg.key_file == str(kubeconfig.parent / "certs" / "bob.key")
    assert load_kubeconfig(str(kubeconfig), context="tf").token == "tok-carol"


@pytest.mark.parametrize("context", ["missing", "broken"])
def test_load_bad_context(kubeconfig: Path, context: str) -> None:
    with pytest.raises(KubeconfigError):
        load_kubeconfig(str(kubeconfig), context=context)


def test_load_missing_file(tmp_path: Path) -> None:
    with pytest.raises(KubeconfigError, match="cannot read"):
        load_kubeconfig(str(tmp_path / "absent"))


def test_kubeconfig_env_first_entry(
    kubeconfig: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBECONFIG", os.pathsep.join([str(kubeconfig), str(tmp_path / "x")]))
    assert load_kubeconfig().token == "tok-alice"
    monkeypatch.delenv("KUBECONFIG")
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".kube").mkdir()
    (tmp_path / ".kube" / "config").write_text(kubeconfig.read_text())
    (tmp_path / ".kube" / "carol.token").write_text("from-home")
    assert load_kubeconfig(context="tf").token == "from-home"


def test_write_then_load_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "kubeconfig"
    write_kubeconfig(
        str(path),
        "https://127.0.0.1:6443",
        token="t0k",
        ca_data=b"CA",
        name="local",
        namespace="apps",
    )
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    cfg = load_kubeconfig(str(path))
    assert (cfg.server, cfg.token, cfg.ca_data, cfg.namespace) == (
        "https://127.0.0.1:6443",
        "t0k",
        b"CA",
        "apps",
    )


def test_written_kubeconfig_loads_in_the_kubernetes_client(tmp_path: Path) -> None:
    kubernetes_config = pytest.importorskip("kubernetes.config")
    from kubernetes import client as k8s_client

    path = tmp_path / "kubeconfig"
    write_kubeconfig(str(path), "http://127.0.0.1:6443", token="abc")
    conf = k8s_client.Configuration()
    kubernetes_config.load_kube_config(config_file=str(path), client_configuration=conf)
    assert conf.host == "http://127.0.0.1:6443"
    assert list(conf.api_key.values()) == ["Bearer abc"]
    _, active = kubernetes_config.list_kube_config_contexts(config_file=str(path))
    assert active["name"] == "tugboat"
    assert active["context"]["namespace"] == "default"


def test_written_kubeconfig_is_read_by_kubectl(tmp_path: Path) -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed")
    path = tmp_path / "kubeconfig"
    write_kubeconfig(
        str(path), "https://127.0.0.1:6443", token="abc", ca_data=b"CA", namespace="apps"
    )
    out = subprocess.run(
        [kubectl, "--kubeconfig", str(path), "config", "view", "--raw", "-o", "json"],
        capture_output=True,
        check=True,
        text=True,
        timeout=30,
    )
    view = orjson.loads(out.stdout)
    assert view["current-context"] == "tugboat"
    assert view["clusters"][0]["cluster"]["server"] == "https://127.0.0.1:6443"
    assert base64.b64decode(view["clusters"][0]["cluster"]["certificate-authority-data"]) == b"CA"
    assert view["users"][0]["user"]["token"] == "abc"
    assert view["contexts"][0]["context"]["namespace"] == "apps"


def test_from_kubeconfig_sends_the_token(tmp_path: Path) -> None:
    path = tmp_path / "kubeconfig"
    write_kubeconfig(str(path), "http://127.0.0.1:1", token="abc", namespace="ns9")
    rec = Recorder()
    with Client.from_kubeconfig(str(path), transport=httpx.MockTransport(rec)) as c:
        c.get(PODS, "p")
    assert rec.last.headers["authorization"] == "Bearer abc"
    assert str(rec.last.url) == "http://127.0.0.1:1/api/v1/namespaces/ns9/pods/p"
    ac = AsyncClient.from_kubeconfig(str(path))
    assert ac.namespace == "ns9"
    asyncio.run(ac.aclose())


def _self_signed(tmp_path: Path) -> tuple[bytes, Path, Path]:
    x509 = pytest.importorskip("cryptography.x509")
    from datetime import UTC, datetime, timedelta

    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tugboat-test")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    pem = cert.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    (tmp_path / "c.crt").write_bytes(pem)
    (tmp_path / "c.key").write_bytes(key_pem)
    return pem, tmp_path / "c.crt", tmp_path / "c.key"


def test_ssl_context_from_kubeconfig_material(tmp_path: Path) -> None:
    pem, crt, key = _self_signed(tmp_path)
    path = tmp_path / "kubeconfig"
    path.write_text(f"""
apiVersion: v1
kind: Config
current-context: x
clusters: [{{name: x, cluster: {{server: "https://h:1",
  certificate-authority-data: {base64.b64encode(pem).decode()}}}}}]
users: [{{name: x, user: {{client-certificate-data: {base64.b64encode(pem).decode()},
  client-key-data: {base64.b64encode(key.read_bytes()).decode()}}}}}]
contexts: [{{name: x, context: {{cluster: x, user: x}}}}]
""")
    ctx = load_kubeconfig(str(path)).ssl_context()
    assert isinstance(ctx, ssl.SSLContext)
    assert ctx.verify_mode == ssl.CERT_REQUIRED
    assert ctx.get_ca_certs()[0]["subject"] == ((("commonName", "tugboat-test"),),)
    # the same material as files, through the Client constructor
    Client("https://h:1", verify=str(crt), cert=(str(crt), str(key))).close()


def test_ssl_context_insecure_and_default() -> None:
    from machinery.kubeconfig import ClusterConfig

    assert ClusterConfig("https://h").ssl_context() is True
    ctx = ClusterConfig("https://h", insecure=True).ssl_context()
    assert isinstance(ctx, ssl.SSLContext)
    assert ctx.verify_mode == ssl.CERT_NONE


# -- the event recorder (machinery.events) ----------------------------------------------------

EVENTS = lookup("events")


def _events(fake: FakeApiServer) -> list[dict[str, Any]]:
    return sorted(
        (o for (k, _, _), o in fake.objects.items() if k == EVENTS.storage_key),
        key=lambda e: e["metadata"]["name"],
    )


@pytest.fixture
def subject() -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "prod", "uid": "uid-1", "resourceVersion": "77"},
    }


async def test_event_fields(subject: dict[str, Any]) -> None:
    fake = FakeApiServer()
    async with fake.async_client() as c:
        rec = EventRecorder(c, "deployment-controller", "host-1")
        rec.event(subject, "Normal", "ScalingReplicaSet", "Scaled up replica set web-1 to 3")
        await rec.aclose()
    [ev] = _events(fake)
    assert ev["metadata"]["namespace"] == "prod"
    assert ev["metadata"]["name"].startswith("web.")
    assert ev["involvedObject"] == {
        "kind": "Deployment",
        "namespace": "prod",
        "name": "web",
        "uid": "uid-1",
        "apiVersion": "apps/v1",
        "resourceVersion": "77",
    }
    assert (ev["reason"], ev["type"], ev["count"]) == ("ScalingReplicaSet", "Normal", 1)
    assert ev["message"] == "Scaled up replica set web-1 to 3"
    assert ev["source"] == {"component": "deployment-controller", "host": "host-1"}
    assert ev["reportingComponent"] == "deployment-controller"
    assert ev["reportingInstance"] == "host-1"
    assert ev["firstTimestamp"] == ev["lastTimestamp"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", ev["firstTimestamp"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", ev["eventTime"])


async def test_cluster_scoped_objects_get_events_in_default() -> None:
    fake = FakeApiServer()
    async with fake.async_client() as c:
        rec = EventRecorder(c, "node-controller")
        rec.event(
            {"kind": "Node", "apiVersion": "v1", "metadata": {"name": "n1", "uid": "u"}},
            "Warning",
            "NodeNotReady",
            "Node n1 status is now: NodeNotReady",
        )
        await rec.flush()
        await rec.aclose()
    [ev] = _events(fake)
    assert ev["metadata"]["namespace"] == "default"
    assert "namespace" not in ev["involvedObject"]
    assert ev["source"] == {"component": "node-controller"}


async def test_repeats_are_aggregated_within_ten_minutes(subject: dict[str, Any]) -> None:
    fake = FakeApiServer()
    clock = FakeClock()
    async with fake.async_client() as c:
        rec = EventRecorder(c, "ctl", clock=clock)
        for _ in range(3):
            rec.event(subject, "Warning", "FailedCreate", "quota exceeded")
        rec.event(subject, "Warning", "FailedCreate", "a different message")
        await rec.flush()
        events = _events(fake)
        assert sorted((e["message"], e["count"]) for e in events) == [
            ("a different message", 1),
            ("quota exceeded", 3),
        ]
        assert len(fake.requests_matching("PATCH", "/events")) == 2

        clock.step(601)  # outside the window: a new Event
        rec.event(subject, "Warning", "FailedCreate", "quota exceeded")
        await rec.flush()
        assert sorted(e["count"] for e in _events(fake) if e["message"] == "quota exceeded") == [
            1,
            3,
        ]

        # the aggregated Event vanished from the store: recreated, count kept
        [fresh] = [e for e in _events(fake) if e["message"] == "quota exceeded" and e["count"] == 1]
        fake.remove(EVENTS, "prod", fresh["metadata"]["name"])
        rec.event(subject, "Warning", "FailedCreate", "quota exceeded")
        await rec.aclose()
    assert sorted(e["count"] for e in _events(fake) if e["message"] == "quota exceeded") == [2, 3]


async def test_spam_filter_limits_each_object(subject: dict[str, Any]) -> None:
    fake = FakeApiServer()
    clock = FakeClock()
    other = {**subject, "metadata": {**subject["metadata"], "uid": "uid-2", "name": "api"}}
    async with fake.async_client() as c:
        rec = EventRecorder(c, "ctl", clock=clock)
        for i in range(30):
            rec.event(subject, "Normal", "Tick", f"message {i}")
        rec.event(other, "Normal", "Tick", "another object is not limited")
        await rec.flush()
        assert len(_events(fake)) == 25 + 1
        assert rec.dropped == 5
        clock.step(300)  # one token back every five minutes
        rec.event(subject, "Normal", "Tick", "late 1")
        rec.event(subject, "Normal", "Tick", "late 2")
        await rec.aclose()
    assert len(_events(fake)) == 27
    assert rec.dropped == 6


async def test_recording_never_raises(subject: dict[str, Any]) -> None:
    fake = FakeApiServer()
    fake.fail(500, "InternalError", method="POST", times=100)
    async with fake.async_client() as c:
        rec = EventRecorder(c, "ctl")
        rec.event(subject, "Normal", "A", "server is down")
        await rec.flush()
        rec.event(subject, "Normal", "B", "still down")
        await rec.aclose()
    assert _events(fake) == []
    assert len(fake.requests_matching("POST", "/events")) == 2


def test_recording_without_a_loop_drops(subject: dict[str, Any]) -> None:
    fake = FakeApiServer()
    rec = EventRecorder(fake.async_client(), "ctl")
    rec.event(subject, "Normal", "A", "no loop here")
    assert rec.dropped == 1
    assert fake.requests == []

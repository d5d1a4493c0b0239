"""Hostile or broken input gets the right 4xx ``Status`` and writes nothing; limits (max in
flight, watches, per-client rate, body size) answer 429/413 and keep the server responsive."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from apiserver import limits
from apiserver.limits import LimitConfig, Limits, TokenBuckets
from tests.conftest import start_apiserver

POD = {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
MERGE = "application/merge-patch+json"


def _status(r: httpx.Response, code: int, reason: str) -> dict:
    assert r.status_code == code, r.text
    body = r.json()
    assert body["kind"] == "Status" and body["status"] == "Failure", body
    assert body["reason"] == reason and body["code"] == code, body
    return body


def _names(http: httpx.Client, ns: str, plural: str = "pods") -> list[str]:
    return [
        i["metadata"]["name"] for i in http.get(f"/api/v1/namespaces/{ns}/{plural}").json()["items"]
    ]


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


# -- bodies -----------------------------------------------------------------------------------
BAD_BODIES = [
    ("nested-10000", b'{"metadata":{"name":"p"},"spec":' + _nested(10000).encode() + b"}", None),
    ("nested-200", b'{"metadata":{"name":"p"},"spec":{"x":' + _nested(200).encode() + b"}}", None),
    ("nested-yaml", b"metadata: {name: p}\nspec: " + _nested(5000).encode(), "application/yaml"),
    ("invalid-utf8-json", b'{"metadata":{"name":"p\xff\xfe"}}', None),
    ("invalid-utf8-yaml", b"metadata:\n  name: p\xff\n", "application/yaml"),
    ("truncated", b'{"metadata":{"name":"p"', None),
    ("not-an-object-list", b"[]", None),
    ("not-an-object-number", b"12", None),
    ("not-an-object-string", b'"pod"', None),
    ("not-an-object-null", b"null", None),
    ("number-out-of-range", b'{"metadata":{"name":"p"},"spec":{"priority":1e999}}', None),
    ("yaml-binary", b"metadata: {name: p}\nspec: !!binary aGVsbG8=\n", "application/yaml"),
    ("yaml-two-documents", b"metadata: {name: p}\n---\nmetadata: {name: q}\n", "application/yaml"),
    (
        "yaml-alias-bomb",
        b"a: &a [x,x,x,x,x,x,x,x,x,x]\n"
        + b"".join(
            f"{n}: &{n} [{','.join(['*' + p] * 10)}]\n".encode()
            for p, n in zip("abcdefg", "bcdefgh", strict=True)
        )
        + b"metadata: {name: p}\n",
        "application/yaml",
    ),
]


@pytest.mark.parametrize(
    ("body", "ctype"), [b[1:] for b in BAD_BODIES], ids=[b[0] for b in BAD_BODIES]
)
def test_bad_bodies_are_400_and_store_nothing(http, ns, body, ctype):
    headers = {"Content-Type": ctype or "application/json"}
    r = http.post(f"/api/v1/namespaces/{ns}/pods", content=body, headers=headers)
    _status(r, 400, "BadRequest")
    assert _names(http, ns) == []
    assert http.get("/readyz").status_code == 200


@pytest.mark.parametrize("verb", ["PUT", "PATCH"])
@pytest.mark.parametrize(
    "body", [b"[]", b"7", b"null", _nested(3000).encode()], ids=["list", "number", "null", "deep"]
)
def test_bad_update_bodies_leave_the_object_alone(http, ns, verb, body):
    path = f"/api/v1/namespaces/{ns}/pods/p"
    assert http.post(f"/api/v1/namespaces/{ns}/pods", json=POD).status_code == 201
    before = http.get(path).json()
    ctype = MERGE if verb == "PATCH" else "application/json"
    r = http.request(verb, path, content=body, headers={"Content-Type": ctype})
    _status(r, 400, "BadRequest")
    assert http.get(path).json() == before


def test_a_json_patch_may_not_nest_an_object_too_deep(http, ns):
    """Each JSON patch ``add`` may nest its value below an existing path: depths add up, so
    the patched object is checked, not only the patch."""
    assert http.post(f"/api/v1/namespaces/{ns}/configmaps", json={"metadata": {"name": "c"}})
    path = f"/api/v1/namespaces/{ns}/configmaps/c"
    jsonpatch = {"Content-Type": "application/json-patch+json"}
    value = json.loads(_nested(100))
    ok = http.patch(path, json=[{"op": "add", "path": "/x", "value": value}], headers=jsonpatch)
    assert ok.status_code == 200, ok.text
    before = http.get(path).json()
    innermost = "/x" + "/0" * 99 + "/-"
    r = http.patch(path, json=[{"op": "add", "path": innermost, "value": value}], headers=jsonpatch)
    assert "nests deeper than the limit" in _status(r, 400, "BadRequest")["message"]
    assert http.get(path).json() == before


def test_wrong_content_type_is_415(http, ns):
    path = f"/api/v1/namespaces/{ns}/pods"
    r = http.post(path, content=json.dumps(POD), headers={"Content-Type": "text/plain"})
    _status(r, 415, "UnsupportedMediaType")
    assert http.post(path, json=POD).status_code == 201
    # a patch must say which kind of patch it is
    r = http.patch(f"{path}/p", content=b"{}", headers={"Content-Type": "application/json"})
    _status(r, 415, "UnsupportedMediaType")
    assert _names(http, ns) == ["p"]


def test_huge_numbers_are_refused(http, ns):
    deployment = {
        "metadata": {"name": "d"},
        "spec": {
            "replicas": 2**70,
            "selector": {"matchLabels": {"a": "b"}},
            "template": {
                "metadata": {"labels": {"a": "b"}},
                "spec": {"containers": [{"name": "c", "image": "x"}]},
            },
        },
    }
    r = http.post(f"/apis/apps/v1/namespaces/{ns}/deployments", json=deployment)
    assert r.status_code in (400, 422) and r.json()["kind"] == "Status", r.text
    assert http.get(f"/apis/apps/v1/namespaces/{ns}/deployments").json()["items"] == []


def test_oversize_bodies_are_413_declared_or_streamed(http, ns):
    path = f"/api/v1/namespaces/{ns}/configmaps"
    big = {"metadata": {"name": "big"}, "data": {"a": "x" * (3 * 1024 * 1024)}}
    _status(http.post(path, json=big), 413, "RequestEntityTooLarge")

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted while read
        yield b'{"metadata":{"name":"big"},"data":{"a":"'
        for _ in range(40):
            yield b"x" * 100_000
        yield b'"}}'

    _status(http.post(path, content=chunks()), 413, "RequestEntityTooLarge")
    assert _names(http, ns, "configmaps") == []


# -- fieldValidation=Strict -------------------------------------------------------------------
def test_strict_unknown_field_is_400_warn_is_a_warning(http, ns):
    path = f"/api/v1/namespaces/{ns}/pods"
    pod = {**POD, "spec": {**POD["spec"], "foo": 1}}
    r = http.post(path, json=pod, params={"fieldValidation": "Strict"})
    body = _status(r, 400, "BadRequest")
    assert body["message"] == 'strict decoding error: unknown field "spec.foo"'
    assert _names(http, ns) == []
    r = http.post(path, json=pod, params={"fieldValidation": "Warn"})
    assert r.status_code == 201
    assert r.headers["warning"] == '299 - "unknown field \\"spec.foo\\""'


def test_strict_duplicate_fields_json(http, ns):
    body = (
        b'{"metadata":{"name":"dup","name":"dup"},"spec":{"containers":'
        b'[{"name":"c","image":"a","image":"b"}],"foo":1}}'
    )
    path = f"/api/v1/namespaces/{ns}/pods"
    r = http.post(path, content=body, params={"fieldValidation": "Strict"})
    assert _status(r, 400, "BadRequest")["message"] == (
        'strict decoding error: duplicate field "metadata.name", '
        'duplicate field "spec.containers[0].image", unknown field "spec.foo"'
    )
    assert _names(http, ns) == []
    # without Strict the last value wins, as in Kubernetes' non-strict decoding
    r = http.post(path, content=body, params={"fieldValidation": "Ignore"})
    assert r.status_code == 201 and r.json()["spec"]["containers"][0]["image"] == "b"


def test_strict_duplicate_fields_yaml_and_patch(http, ns):
    path = f"/api/v1/namespaces/{ns}/configmaps"
    yaml_body = b"metadata:\n  name: y\ndata:\n  a: '1'\n  a: '2'\n"
    r = http.post(
        path,
        content=yaml_body,
        params={"fieldValidation": "Strict"},
        headers={"Content-Type": "application/yaml"},
    )
    message = _status(r, 400, "BadRequest")["message"]
    assert message == (
        'strict decoding error: yaml: unmarshal errors:\n  line 5: key "a" already set in map'
    )
    assert http.post(path, json={"metadata": {"name": "y"}, "data": {"a": "0"}}).status_code == 201
    before = http.get(f"{path}/y").json()
    r = http.patch(
        f"{path}/y",
        content=b'{"data":{"a":"1","a":"2"}}',
        params={"fieldValidation": "Strict"},
        headers={"Content-Type": MERGE},
    )
    assert 'duplicate field "data.a"' in _status(r, 400, "BadRequest")["message"]
    assert http.get(f"{path}/y").json() == before


# -- limits, in front of a real server ----------------------------------------------------------
@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory):
    server = start_apiserver(
        tmp_path_factory.mktemp("limited"),
        extra=[
            "--max-mutating-requests-inflight",
            "2",
            "--max-requests-inflight",
            "50",
            "--max-watches",
            "2",
        ],
    )
    yield server
    server.stop()


def test_a_write_flood_gets_429_and_stores_only_what_it_acknowledged(limited):
    async def flood() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=limited.url, timeout=30) as c:
            r = await c.post("/api/v1/namespaces", json={"metadata": {"name": "flood"}})
            assert r.status_code == 201, r.text

            async def one(i: int) -> httpx.Response:
                return await c.post(
                    "/api/v1/namespaces/flood/configmaps", json={"metadata": {"name": f"c{i}"}}
                )

            return await asyncio.gather(*(one(i) for i in range(300)))

    replies = asyncio.run(flood())
    codes = [r.status_code for r in replies]
    assert set(codes) <= {201, 429}, codes
    refused = [r for r in replies if r.status_code == 429]
    assert refused, "a flood of 300 concurrent writes against a limit of 2 was never refused"
    assert refused[0].headers["retry-after"] == "1"
    body = _status(refused[0], 429, "TooManyRequests")
    assert body["message"] == "Too many requests, please try again later."
    assert body["details"]["retryAfterSeconds"] == 1
    with httpx.Client(base_url=limited.url, timeout=10) as http:
        stored = set(_names(http, "flood", "configmaps"))
    created = {r.json()["metadata"]["name"] for r in replies if r.status_code == 201}
    assert stored == created
    metrics = httpx.get(f"{limited.url}/metrics").text
    dropped = [
        line
        for line in metrics.splitlines()
        if line.startswith('apiserver_dropped_requests_total{request_kind="mutating"}')
    ]
    assert dropped and float(dropped[0].split()[-1]) >= len(refused)


def test_reads_are_served_while_writes_are_refused(limited):
    """Reads and writes are counted apart: a write flood does not lock readers out."""

    async def run() -> tuple[list[int], list[int]]:
        async with httpx.AsyncClient(base_url=limited.url, timeout=30) as c:
            r = await c.post("/api/v1/namespaces", json={"metadata": {"name": "rw"}})
            assert r.status_code == 201, r.text
            stop = asyncio.Event()
            writes: list[int] = []

            async def writer(i: int) -> None:
                n = 0
                while not stop.is_set():
                    n += 1
                    r = await c.post(
                        "/api/v1/namespaces/rw/configmaps",
                        json={"metadata": {"name": f"w{i}-{n}"}},
                    )
                    writes.append(r.status_code)

            tasks = [asyncio.create_task(writer(i)) for i in range(24)]
            reads: list[int] = []
            async with httpx.AsyncClient(base_url=limited.url, timeout=30) as reader:
                deadline = time.monotonic() + 20
                while (429 not in writes or len(reads) < 20) and time.monotonic() < deadline:
                    reads.append((await reader.get("/api/v1/namespaces/rw/configmaps")).status_code)
            stop.set()
            await asyncio.gather(*tasks)
            return reads, writes

    reads, writes = asyncio.run(run())
    assert 429 in writes
    assert set(reads) == {200}


def test_watches_are_limited_and_not_counted_as_requests(limited):
    url = f"{limited.url}/api/v1/namespaces/default/configmaps?watch=1"
    with httpx.Client(timeout=30) as c, c.stream("GET", url) as w1, c.stream("GET", url) as w2:
        assert w1.status_code == w2.status_code == 200
        third = c.get(url)
        _status(third, 429, "TooManyRequests")
        assert third.headers["retry-after"] == "1"
        assert c.get(f"{limited.url}/api/v1/namespaces").status_code == 200
    # once a watch ends, its slot is free again
    deadline = time.monotonic() + 15
    with httpx.Client(timeout=30) as c:
        while True:
            with c.stream("GET", url) as w:
                if w.status_code == 200:
                    break
            assert time.monotonic() < deadline, "a closed watch never gave its slot back"
            time.sleep(0.1)


def test_one_flooding_client_does_not_shut_out_another(tmp_path: Path):
    server = start_apiserver(tmp_path, extra=["--client-qps", "1", "--client-burst", "5"])
    try:
        with httpx.Client(base_url=server.url, timeout=10) as flooder:
            replies = [flooder.get("/api/v1/namespaces") for _ in range(30)]
            codes = [r.status_code for r in replies]
            assert codes[:5] == [200] * 5 and set(codes) == {200, 429}, codes
            refused = next(r for r in replies if r.status_code == 429)
            _status(refused, 429, "TooManyRequests")
            assert int(refused.headers["retry-after"]) >= 1
            assert flooder.get("/readyz").status_code == 200  # health probes are never refused
        other = httpx.HTTPTransport(local_address="127.0.0.2")
        with httpx.Client(base_url=server.url, transport=other, timeout=10) as polite:
            assert polite.get("/api/v1/namespaces").status_code == 200
    finally:
        server.stop()


# -- the middleware on its own ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("method", "path", "query", "kind"),
    [
        ("GET", "/api/v1/namespaces/ns/pods", b"", limits._READ),
        ("GET", "/api/v1/namespaces/ns/pods", b"watch=1", limits._WATCH),
        ("GET", "/api/v1/pods", b"labelSelector=a&watch=true", limits._WATCH),
        ("GET", "/api/v1/namespaces/ns/pods", b"watch=false", limits._READ),
        ("POST", "/api/v1/namespaces/ns/pods", b"", limits._WRITE),
        ("DELETE", "/apis/apps/v1/namespaces/ns/deployments/d", b"", limits._WRITE),
        ("GET", "/api/v1/namespaces/ns/pods/p/log", b"follow=true", limits._FREE),
        ("POST", "/api/v1/namespaces/ns/pods/p/exec", b"command=ls", limits._FREE),
        ("POST", "/api/v1/namespaces/ns/pods/p/status", b"", limits._WRITE),
        ("GET", "/api/v1/namespaces/ns/pods/p/exec", b"command=ls", limits._FREE),
        ("GET", "/api/v1/namespaces/ns/pods/log", b"", limits._READ),
        ("GET", "/api/v1/nodes/n/proxy/stats", b"", limits._FREE),
        ("GET", "/api/v1/namespaces/log/status", b"", limits._READ),
        ("GET", "/readyz", b"", limits._FREE),
    ],
    ids=[
        "list",
        "watch",
        "watch-all-namespaces",
        "watch-false",
        "create",
        "delete",
        "logs",
        "exec-post",
        "status-post",
        "exec-upgrade",
        "pod-named-log",
        "node-proxy",
        "namespace-named-log",
        "probe",
    ],
)
def test_classify(method, path, query, kind):
    assert limits.classify({"method": method, "path": path, "query_string": query}) == kind


def test_token_bucket_refills_with_time():
    now = [0.0]
    buckets = TokenBuckets(qps=2, burst=2, clock=lambda: now[0])
    assert buckets.take("a") == 0 and buckets.take("a") == 0
    assert buckets.take("a") == pytest.approx(0.5)
    assert buckets.take("b") == 0  # another client has its own bucket
    now[0] += 0.5
    assert buckets.take("a") == 0


def test_inflight_limit_refuses_at_once_and_frees_its_slot():
    """Two writes held inside the app fill a limit of 2: the third is refused immediately;
    when one finishes, the next is admitted."""

    async def run() -> None:
        gate = asyncio.Event()
        entered = asyncio.Semaphore(0)

        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            entered.release()
            await gate.wait()
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})

        mw = Limits(app, LimitConfig(max_mutating_requests_inflight=2))

        async def call() -> int:
            sent: list[dict[str, Any]] = []

            async def receive() -> dict[str, Any]:
                return {"type": "http.request", "body": b"{}", "more_body": False}

            async def send(message: dict[str, Any]) -> None:
                sent.append(message)

            scope = {
                "type": "http",
                "method": "POST",
                "path": "/api/v1/namespaces/a/configmaps",
                "query_string": b"",
                "headers": [(b"content-length", b"2")],
            }
            await mw(scope, receive, send)
            return sent[0]["status"]

        held = [asyncio.create_task(call()) for _ in range(2)]
        await entered.acquire()
        await entered.acquire()
        assert await call() == 429
        gate.set()
        assert await asyncio.gather(*held) == [200, 200]
        assert mw.inflight == [0, 0, 0]
        assert await call() == 200

    asyncio.run(run())

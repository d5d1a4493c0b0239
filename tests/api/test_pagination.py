"""``limit``/``continue``: every page shows the store at the first page's resourceVersion, as
Kubernetes does, or answers 410 Expired once that revision has left the window."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import orjson
import pytest

from apiserver.cache import WatchCache
from apiserver.storage import Key, Record
from tests.conftest import ApiServerProcess, start_apiserver

MERGE = {"Content-Type": "application/merge-patch+json"}


def _namespace(http: httpx.Client) -> str:
    name = f"pg-{uuid.uuid4().hex[:8]}"
    assert http.post("/api/v1/namespaces", json={"metadata": {"name": name}}).status_code == 201
    return name


def _create(http: httpx.Client, ns: str, name: str, value: str = "0") -> None:
    body = {"metadata": {"name": name}, "data": {"v": value}}
    r = http.post(f"/api/v1/namespaces/{ns}/configmaps", json=body)
    assert r.status_code == 201, r.text


def _pages(http: httpx.Client, path: str, limit: int, between=None) -> list[dict]:
    """All pages of a list; ``between(page_number)`` runs after each page but the last."""
    pages, token = [], None
    while True:
        params = {"limit": limit} | ({"continue": token} if token else {})
        r = http.get(path, params=params)
        assert r.status_code == 200, r.text
        pages.append(r.json())
        token = r.json()["metadata"].get("continue")
        if not token:
            return pages
        if between is not None:
            between(len(pages))


def _view(pages: list[dict]) -> list[tuple[str, str]]:
    return [(i["metadata"]["name"], i["data"]["v"]) for p in pages for i in p["items"]]


def test_pages_show_the_first_pages_revision(http):
    ns = _namespace(http)
    for i in range(7):
        _create(http, ns, f"c{i}")
    path = f"/api/v1/namespaces/{ns}/configmaps"
    expected = [(f"c{i}", "0") for i in range(7)]

    def churn(page: int) -> None:
        # deletes and updates ahead of the cursor, creates on both sides of it
        http.delete(f"{path}/c{page + 3}")
        http.patch(f"{path}/c{page + 4}", json={"data": {"v": "changed"}}, headers=MERGE)
        _create(http, ns, f"c{page}a")
        _create(http, ns, f"c{page + 4}a")

    pages = _pages(http, path, 2, churn)
    assert _view(pages) == expected
    first_rv = pages[0]["metadata"]["resourceVersion"]
    assert all(p["metadata"]["resourceVersion"] == first_rv for p in pages)
    assert pages[0]["metadata"]["remainingItemCount"] == 5
    # and a new list sees the present
    now = {name for name, _ in _view(_pages(http, path, 100))}
    assert now == {"c0", "c1", "c2", "c3", "c1a", "c2a", "c3a", "c5a", "c6a", "c7a"}


def test_all_namespaces_list_is_a_snapshot_too(http):
    a, b = _namespace(http), _namespace(http)
    for ns in (a, b):
        for i in range(3):
            _create(http, ns, f"x{i}")
    mine = {a, b}

    def churn(page: int) -> None:
        if page == 1:
            http.delete(f"/api/v1/namespaces/{b}/configmaps/x1")
            _create(http, b, "x0b")

    pages = _pages(http, "/api/v1/configmaps", 3, churn)
    seen = [
        (i["metadata"]["namespace"], i["metadata"]["name"])
        for p in pages
        for i in p["items"]
        if i["metadata"]["namespace"] in mine
    ]
    assert seen == sorted((ns, f"x{i}") for ns in (a, b) for i in range(3))


def test_a_continue_token_past_the_window_is_expired(tmp_path: Path):
    server = start_apiserver(tmp_path, extra=["--history", "5"])
    try:
        with httpx.Client(base_url=server.url, timeout=10) as http:
            ns = _namespace(http)
            for i in range(4):
                _create(http, ns, f"c{i}")
            path = f"/api/v1/namespaces/{ns}/configmaps"
            first = http.get(path, params={"limit": 1}).json()
            for i in range(8):  # more writes than the window holds
                http.patch(f"{path}/c3", json={"data": {"v": str(i)}}, headers=MERGE)
            r = http.get(path, params={"limit": 1, "continue": first["metadata"]["continue"]})
            assert r.status_code == 410, r.text
            body = r.json()
            assert body["kind"] == "Status" and body["reason"] == "Expired" and body["code"] == 410
            assert "too old to display a consistent list" in body["message"]
    finally:
        server.stop()


def test_a_snapshot_survives_a_restart(tmp_path: Path):
    server: ApiServerProcess = start_apiserver(tmp_path)
    try:
        with httpx.Client(base_url=server.url, timeout=10) as http:
            ns = _namespace(http)
            for i in range(4):
                _create(http, ns, f"c{i}")
            token = http.get(f"/api/v1/namespaces/{ns}/configmaps", params={"limit": 2}).json()[
                "metadata"
            ]["continue"]
        server.stop()
        server = start_apiserver(tmp_path, port=server.port)
        with httpx.Client(base_url=server.url, timeout=10) as http:
            path = f"/api/v1/namespaces/{ns}/configmaps"
            http.patch(f"{path}/c3", json={"data": {"v": "new"}}, headers=MERGE)
            http.delete(f"{path}/c2")
            rest = http.get(path, params={"limit": 2, "continue": token})
            assert rest.status_code == 200, rest.text
            assert _view([rest.json()]) == [("c2", "0"), ("c3", "0")]
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("params", "code"),
    [({"limit": "ten"}, 400), ({"continue": "not-a-token"}, 400), ({"limit": "-1"}, 200)],
    ids=["limit-not-a-number", "garbage-token", "negative-limit-means-none"],
)
def test_bad_paging_parameters(http, params, code):
    r = http.get("/api/v1/namespaces/default/configmaps", params=params)
    assert r.status_code == code, r.text
    if code != 200:
        assert r.json()["reason"] == "BadRequest"


def test_the_cache_rebuilds_only_what_its_window_knows():
    """After a restart the window starts mid-history: a key whose first loaded event is not its
    creation has an unknown earlier state, so revisions before that event cannot be rebuilt."""

    def rec(rev: int, typ: str, name: str, v: int) -> Record:
        raw = orjson.dumps({"metadata": {"name": name}, "v": v})
        return Record(rev, typ, Key("/configmaps", "ns", name), raw)  # type: ignore[arg-type]

    history = [rec(11, "MODIFIED", "a", 2), rec(12, "ADDED", "b", 1), rec(13, "MODIFIED", "b", 2)]
    cache = WatchCache(window=100)
    cache.load(13, 10, [(r.key, r.rev, r.raw) for r in (history[0], history[2])], history)

    def at(rev: int) -> list[tuple[str, int]]:
        return [(name, e.obj["v"]) for (_, name), e in cache.list_at("/configmaps", None, rev)]

    with pytest.raises(LookupError):
        at(10)
    assert at(11) == [("a", 2)]
    assert at(12) == [("a", 2), ("b", 1)]
    final = {"metadata": {"name": "a"}, "v": 2}
    cache.apply("DELETED", Key("/configmaps", "ns", "a"), 14, final, orjson.dumps(final))
    assert at(13) == [("a", 2), ("b", 2)]
    assert at(14) == [("b", 2)]

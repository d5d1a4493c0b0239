"""Watch semantics: events after a revision, resume, selectors, bookmarks, 410 Expired."""

from __future__ import annotations

import threading

import httpx
import orjson


def read_events(base: str, path: str, params: dict, count: int, timeout: float = 10) -> list:
    """Open a watch and return its first ``count`` events (or fewer if it ends)."""
    events = []
    with httpx.stream("GET", base + path, params={"watch": "1", **params}, timeout=timeout) as r:
        assert r.status_code == 200
        for line in r.iter_lines():
            if line:
                events.append(orjson.loads(line))
            if len(events) >= count:
                break
    return events


def test_watch_from_revision_sees_changes_in_order(api, http, ns):
    path = f"/api/v1/namespaces/{ns}/configmaps"
    start = http.get(path).json()["metadata"]["resourceVersion"]
    http.post(path, json={"metadata": {"name": "a"}, "data": {"v": "1"}})
    http.patch(
        f"{path}/a",
        json={"data": {"v": "2"}},
        headers={"Content-Type": "application/merge-patch+json"},
    )
    http.delete(f"{path}/a")
    events = read_events(api.url, path, {"resourceVersion": start}, 3)
    assert [e["type"] for e in events] == ["ADDED", "MODIFIED", "DELETED"]
    revs = [int(e["object"]["metadata"]["resourceVersion"]) for e in events]
    assert revs == sorted(revs) and revs[0] > int(start)
    assert events[1]["object"]["data"] == {"v": "2"}


def test_watch_without_revision_starts_with_current_objects(api, http, ns):
    path = f"/api/v1/namespaces/{ns}/configmaps"
    for n in ("x", "y"):
        http.post(path, json={"metadata": {"name": n}})
    events = read_events(api.url, path, {}, 2)
    assert {(e["type"], e["object"]["metadata"]["name"]) for e in events} == {
        ("ADDED", "x"),
        ("ADDED", "y"),
    }


def test_live_watch_delivers_a_later_write(api, http, ns):
    path = f"/api/v1/namespaces/{ns}/configmaps"
    rv = http.get(path).json()["metadata"]["resourceVersion"]
    got: list = []
    t = threading.Thread(
        target=lambda: got.extend(read_events(api.url, path, {"resourceVersion": rv}, 1))
    )
    t.start()
    http.post(path, json={"metadata": {"name": "live"}})
    t.join(10)
    assert got and got[0]["object"]["metadata"]["name"] == "live"


def test_label_selector_turns_unmatching_update_into_deleted(api, http, ns):
    path = f"/api/v1/namespaces/{ns}/configmaps"
    rv = http.get(path).json()["metadata"]["resourceVersion"]
    http.post(path, json={"metadata": {"name": "s", "labels": {"app": "a"}}})
    http.post(path, json={"metadata": {"name": "other", "labels": {"app": "b"}}})
    http.patch(
        f"{path}/s",
        json={"metadata": {"labels": {"app": "z"}}},
        headers={"Content-Type": "application/merge-patch+json"},
    )
    events = read_events(api.url, path, {"resourceVersion": rv, "labelSelector": "app=a"}, 2)
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [
        ("ADDED", "s"),
        ("DELETED", "s"),
    ]


def test_watch_ends_after_timeout_seconds(api, ns):
    events = read_events(
        api.url,
        f"/api/v1/namespaces/{ns}/configmaps",
        {"resourceVersion": "0", "timeoutSeconds": "1"},
        100,
    )
    assert events == []


def test_watch_list_sends_initial_events_then_bookmark(api, http, ns):
    path = f"/api/v1/namespaces/{ns}/configmaps"
    http.post(path, json={"metadata": {"name": "init"}})
    events = read_events(
        api.url,
        path,
        {
            "sendInitialEvents": "true",
            "resourceVersionMatch": "NotOlderThan",
            "allowWatchBookmarks": "true",
        },
        2,
    )
    assert events[0]["type"] == "ADDED"
    assert events[1]["type"] == "BOOKMARK"
    assert events[1]["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"] == "true"


def test_too_old_revision_is_410_expired(tmp_path):
    from tests.conftest import start_apiserver

    server = start_apiserver(tmp_path, extra=["--history", "5"])
    try:
        path = "/api/v1/namespaces/default/configmaps"
        first = httpx.post(server.url + path, json={"metadata": {"name": "c0"}}).json()
        for i in range(1, 10):
            httpx.post(server.url + path, json={"metadata": {"name": f"c{i}"}})
        events = read_events(
            server.url, path, {"resourceVersion": first["metadata"]["resourceVersion"]}, 1
        )
        assert events[0]["type"] == "ERROR"
        assert events[0]["object"]["code"] == 410
        assert events[0]["object"]["reason"] == "Expired"
    finally:
        server.stop()

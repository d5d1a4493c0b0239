"""Projected ServiceAccount tokens on the node: TokenRequest bodies, the 80% refresh rule on a
fake clock, failures, and the token file written with the volume's other files."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from apiserver.serviceaccount_admission import MOUNT_PATH, api_access_volume
from kubelet.env import Sources
from kubelet.podworker import PodWorker
from kubelet.satoken import MAX_TTL, RETRY_SECONDS, Token, TokenManager, token_key
from kubelet.volumes import DATA, PodVolumes, VolumeError
from machinery import errors
from machinery.kinds import lookup
from tests.unit.test_kubelet_volumes import FakeMounter
from tests.unit.test_kubelet_worker import Env, env, settle, sleeper  # noqa: F401

Obj = dict[str, Any]


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class TokenServer:
    """Answers TokenRequests as the API server does (expiry = now + expirationSeconds)."""

    def __init__(self, clock: Callable[[], float], max_seconds: int | None = None) -> None:
        self.clock = clock
        self.max_seconds = max_seconds
        self.requests: list[tuple[str, str, Obj]] = []
        self.fail_with: Exception | None = None

    async def create(
        self, rt: Any, obj: Obj, namespace: str, *, subresource: str, name: str
    ) -> Obj:
        assert (rt.plural, subresource) == ("serviceaccounts", "token")
        self.requests.append((namespace, name, obj))
        if self.fail_with is not None:
            raise self.fail_with
        seconds = obj["spec"]["expirationSeconds"]
        if self.max_seconds:
            seconds = min(seconds, self.max_seconds)
        exp = datetime.fromtimestamp(int(self.clock()) + seconds, UTC)
        return {
            "kind": "TokenRequest",
            "spec": {**obj["spec"], "expirationSeconds": seconds},
            "status": {
                "token": f"token-{len(self.requests)}",
                "expirationTimestamp": exp.strftime("%Y-%m-%dT%H:%M:%SZ"),
            },
        }


def pod(*volumes: Obj, sa: str = "robot") -> Obj:
    return {
        "metadata": {"name": "p", "namespace": "team", "uid": "pod-uid"},
        "spec": {
            "serviceAccountName": sa,
            "containers": [{"name": "c", "image": "x"}],
            "volumes": list(volumes) or [api_access_volume("kube-api-access-abcde")],
        },
    }


async def test_request_is_bound_to_the_pod_with_audience_and_lifetime() -> None:
    clock = Clock()
    server = TokenServer(clock)
    audience = {
        "name": "vault",
        "projected": {
            "sources": [
                {
                    "serviceAccountToken": {
                        "audience": "vault",
                        "expirationSeconds": 7200,
                        "path": "v",
                    }
                }
            ]
        },
    }
    got = await TokenManager(clock).fetch(
        server, pod(api_access_volume("kube-api-access-x"), audience)
    )
    assert len(got) == 2 and all(isinstance(t, Token) for t in got.values())
    (ns1, name1, first), (_, _, second) = server.requests
    assert (ns1, name1) == ("team", "robot")
    assert first["spec"] == {
        "audiences": [],
        "expirationSeconds": 3607,
        "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": "p", "uid": "pod-uid"},
    }
    assert second["spec"]["audiences"] == ["vault"]
    assert second["spec"]["expirationSeconds"] == 7200


async def test_refresh_once_80_percent_of_the_lifetime_has_passed() -> None:
    clock = Clock()
    server = TokenServer(clock)
    manager = TokenManager(clock)
    p = pod()
    key = token_key(p, p["spec"]["volumes"][0]["projected"]["sources"][0]["serviceAccountToken"])
    first = (await manager.fetch(server, p))[key]
    assert isinstance(first, Token) and first.expires - first.issued == 3607
    assert manager.next_refresh(p) == pytest.approx(0.8 * 3607, abs=1)
    clock.now += 0.8 * 3607 - 5
    assert (await manager.fetch(server, p))[key] == first
    assert len(server.requests) == 1
    clock.now += 5
    second = (await manager.fetch(server, p))[key]
    assert isinstance(second, Token) and second.token != first.token
    assert len(server.requests) == 2
    assert manager.next_refresh(p) == pytest.approx(0.8 * 3607, abs=1)


async def test_lifetime_is_the_servers_answer_and_capped_at_a_day() -> None:
    clock = Clock()
    server = TokenServer(clock, max_seconds=1000)  # the server shortened the lifetime
    manager = TokenManager(clock)
    p = pod()
    await manager.fetch(server, p)
    assert manager.next_refresh(p) == pytest.approx(800, abs=1)
    assert Token("t", 0.0, 10 * MAX_TTL).refresh_at() == MAX_TTL


async def test_failed_refresh_keeps_a_valid_token_and_fails_without_one() -> None:
    clock = Clock()
    server = TokenServer(clock)
    manager = TokenManager(clock)
    p = pod()
    [(key, first)] = (await manager.fetch(server, p)).items()
    server.fail_with = errors.Forbidden("no")
    clock.now += 0.9 * 3607
    assert (await manager.fetch(server, p))[key] == first
    assert manager.next_refresh(p) == RETRY_SECONDS  # overdue: no hot loop
    clock.now += 0.2 * 3607  # expired now: dropped from the cache
    assert (await manager.fetch(server, p))[key] == "no"
    assert manager.next_refresh(p) is None


def test_token_file_is_written_with_the_other_files_and_swapped_atomically(
    tmp_path: Path,
) -> None:
    p = pod()
    projection = p["spec"]["volumes"][0]["projected"]["sources"][0]["serviceAccountToken"]
    key = token_key(p, projection)
    ca = {"ca.crt": b"CA"}
    volumes = PodVolumes(str(tmp_path), "pod-uid", FakeMounter())
    sources = Sources(configmaps={"kube-root-ca.crt": ca}, tokens={key: Token("one", 0, 100)})
    path = Path(volumes.setup(p, sources, {})["kube-api-access-abcde"].path)
    files = {f.name: f.read_bytes() for f in path.iterdir() if not f.name.startswith("..")}
    assert files == {"token": b"one", "ca.crt": b"CA", "namespace": b"team"}
    assert oct(os.stat(path / "token").st_mode & 0o777) == oct(0o644)
    before = os.readlink(path / DATA)
    sources.tokens[key] = Token("two", 80, 180)
    volumes.setup(p, sources, {})
    assert (path / "token").read_bytes() == b"two" and os.readlink(path / DATA) != before
    assert (path / "ca.crt").read_bytes() == b"CA"


def test_missing_token_fails_the_volume(tmp_path: Path) -> None:
    p = pod()
    volumes = PodVolumes(str(tmp_path), "pod-uid", FakeMounter())
    sources = Sources(configmaps={"kube-root-ca.crt": {"ca.crt": b"CA"}}, tokens={})
    with pytest.raises(VolumeError, match="failed to fetch token: not requested"):
        volumes.setup(p, sources, {})


class TokenClient:
    """The fake API server's client, with TokenRequests answered by a :class:`TokenServer`."""

    def __init__(self, inner: Any, tokens: TokenServer) -> None:
        self.inner = inner
        self.tokens = tokens

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def create(self, rt: Any, obj: Obj, namespace: Any = None, **kw: Any) -> Obj:
        if kw.get("subresource") == "token":
            return await self.tokens.create(rt, obj, namespace, **kw)
        return await self.inner.create(rt, obj, namespace, **kw)


async def test_worker_refreshes_the_token_file_without_restarting(env: Env) -> None:  # noqa: F811
    env.api.seed(
        lookup("configmaps"),
        {
            "metadata": {"name": "kube-root-ca.crt", "namespace": "default"},
            "data": {"ca.crt": "CA"},
        },
    )
    volume = api_access_volume("kube-api-access-abcde")
    mount = {"name": volume["name"], "mountPath": MOUNT_PATH, "readOnly": True}
    pod = env.seed("app", [sleeper(volumeMounts=[mount])], volumes=[volume])
    ctx = env.context()
    server = TokenServer(env.clock)
    ctx.client = TokenClient(ctx.client, server)  # type: ignore[assignment]
    ctx.tokens = TokenManager(env.clock)
    ctx.mounter = FakeMounter()
    ctx.resync = None  # only the token refresh brings the worker back (as on hollow nodes)
    worker = PodWorker(ctx, pod)
    wake = await settle(worker, env)
    assert "running" in env.container("app", "main")["state"]
    (created,) = env.fake.containers.values()
    (m,) = created.config.mounts
    token_file = Path(m.host_path) / "token"
    assert token_file.read_text() == "token-1"
    assert wake == pytest.approx(0.8 * 3607, abs=1)

    env.clock.step(0.8 * 3607 - 10)
    await settle(worker, env)
    assert token_file.read_text() == "token-1" and len(server.requests) == 1
    env.clock.step(11)
    await settle(worker, env)
    assert token_file.read_text() == "token-2" and len(server.requests) == 2
    assert list(env.fake.containers) == [created.id]  # the same container, never restarted
    assert env.container("app", "main")["restartCount"] == 0
    assert (Path(m.host_path) / "ca.crt").read_text() == "CA"

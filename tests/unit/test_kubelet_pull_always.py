"""``imagePullPolicy: Always`` in the pod worker (fake runtime): a present image is pulled again
from a registry reachable here, and used as is from any other (see kubelet.images.reachable)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from kubelet.podworker import PodWorker
from tests.unit.test_kubelet_worker import Env, env, settle  # noqa: F401 - the fixture

LOCAL = "localhost:5000/app:1"
LAB = "registry.lab:5000/app:1"


def _app(name: str, image: str, policy: str) -> dict:
    return {"name": name, "image": image, "imagePullPolicy": policy, "command": ["sleep", "1"]}


@pytest.mark.parametrize(
    ("image", "local", "policy", "pulls"),
    [
        (LOCAL, (), "Always", 1),
        (LOCAL, (), "IfNotPresent", 0),
        ("docker.io/library/busybox:1.35", (), "Always", 0),  # offline: present is used
        (LAB, (), "Always", 0),
        (LAB, ("registry.lab:5000",), "Always", 1),
    ],
    ids=["loopback", "if-not-present", "docker-hub", "remote", "configured-local"],
)
async def test_always_pulls_a_present_image_only_from_a_reachable_registry(
    env: Env,  # noqa: F811 - the fixture imported above
    image: str,
    local: tuple[str, ...],
    policy: str,
    pulls: int,
) -> None:
    env.fake.add_image(image)
    env.fake.pullable.add(image)
    pod = env.seed("p", [_app("main", image, policy)])
    worker = PodWorker(replace(env.context(), local_registries=frozenset(local)), pod)
    await settle(worker, env)
    assert env.fake.calls["PullImage"] == pulls
    assert "running" in env.container("p", "main")["state"]


async def test_a_failed_pull_under_always_backs_off_although_present(
    env: Env,  # noqa: F811 - the fixture imported above
) -> None:
    env.fake.add_image(LOCAL)  # present, but the registry no longer has it
    pod = env.seed("p", [_app("main", LOCAL, "Always")])
    worker = PodWorker(env.context(), pod)
    await worker.sync()
    assert env.container("p", "main")["state"]["waiting"]["reason"] == "ErrImagePull"

"""The voting app's ``docker-compose.yml`` on containerd, from the host's point of view.

``tug compose up -f manifests/examples/voting-app/docker-compose.yml`` builds the five services
from their Dockerfiles (loaded into the node's containerd) and applies the Deployments and
Services; votes go in on the front end's NodePort from the host and come out of the results
service's NodePort after crossing queue, worker and store by DNS name; ``tug compose down``
removes every object it created (and the garbage collector the pods).

Cluster DNS and the service proxy are needed, so this runs in the ``env`` of
``tests/e2e/test_services_containerd.py`` (it binds 10.96.0.10:53 — run this module alone or in
the same session as that one, never beside it in another session). The Deployments and
controllers are real; the scheduler is not under test: a binder puts this namespace's pending
pods on the test's node.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from cli.compose.convert import PROJECT_LABEL
from controllers.manager import ControllerManager
from machinery import errors
from machinery.client import AsyncClient
from machinery.kinds import lookup
from tests.conftest import ApiServerProcess
from tests.e2e.kubelet_env import eventually, page_text
from tests.e2e.test_registry_build import pod_ready, pod_states, run_tug
from tests.e2e.test_services_containerd import Env, env  # noqa: F401 - the shared fixture

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "manifests" / "examples" / "voting-app" / "docker-compose.yml"
SELECTOR = f"{PROJECT_LABEL}=voting"
PODS, SERVICES, DEPLOYMENTS = (lookup(n) for n in ("pods", "services", "deployments"))
REPLICASETS = lookup("replicasets")


async def _bind_pending(client: AsyncClient, namespace: str, node: str) -> None:
    """Bind every pod of ``namespace`` without a node to ``node`` (a one-node scheduler)."""
    while True:
        for p in (await client.list_all(PODS, namespace))["items"]:
            if p["spec"].get("nodeName") or p["metadata"].get("deletionTimestamp"):
                continue
            binding = {"metadata": {"name": p["metadata"]["name"]}, "target": {"name": node}}
            try:
                await client.create(
                    PODS, binding, namespace, subresource="binding", name=p["metadata"]["name"]
                )
            except (errors.Conflict, errors.NotFound):
                pass
        await asyncio.sleep(0.2)


async def test_voting_app_compose_up_vote_down(
    env: Env,  # noqa: F811 - the fixture imported above
    api: ApiServerProcess,
    tmp_path: Path,
) -> None:
    c, ns = env.client, env.namespace
    manager = ControllerManager(
        c, controllers=["replicaset", "deployment", "garbagecollector"], leader_elect=False
    )
    tasks = [
        asyncio.create_task(manager.run()),
        asyncio.create_task(_bind_pending(c, ns, env.node.name)),
    ]
    common = ["-f", str(COMPOSE_FILE), "-n", ns, "-s", api.url, "--data-dir", str(tmp_path)]
    down = False
    try:
        # builds run in runc for seconds: off the event loop the node agent and proxy run on
        code, out, err = await asyncio.to_thread(
            run_tug, "compose", "up", *common, "--socket", env.runtime.socket
        )
        assert code == 0, err
        for name in ("vote", "queue", "worker", "store", "result"):
            assert f"deployment.apps/{name} created" in out, out
        assert "service/vote created" in out and "service/result created" in out

        pods: list[dict] = []

        async def all_ready() -> bool:
            pods[:] = (await c.list_all(PODS, ns, label_selector=SELECTOR))["items"]
            return len(pods) == 6 and all(pod_ready(p) for p in pods)

        try:
            await eventually("voting app pods ready", all_ready, 180, poll=0.5)
        except AssertionError as e:
            raise AssertionError(f"{e}; pods: {pod_states(pods)}") from None
        async with httpx.AsyncClient(trust_env=False, timeout=10) as http:

            async def vote(choice: str) -> str:
                text = await page_text(http, f"http://127.0.0.1:31000/cgi-bin/vote?choice={choice}")
                return text if "voted" in text else ""

            for choice in "aab":
                answer = await eventually(f"vote {choice}", lambda ch=choice: vote(ch), 30, 0.5)
                assert f"voted {choice} (served by vote-" in answer, answer

            async def results() -> str:
                text = await page_text(http, "http://127.0.0.1:31001/cgi-bin/results")
                return text if "a 2" in text and "b 1" in text else ""

            text = await eventually("votes counted", results, 30, 0.5)
            assert "processed 3" in text, text

        code, out, err = await asyncio.to_thread(run_tug, "compose", "down", *common)
        down = True
        assert code == 0, err
        assert "deployment.apps/vote deleted" in out and "service/result deleted" in out, out

        async def nothing_left() -> list[str]:
            left = []
            for rt in (DEPLOYMENTS, REPLICASETS, PODS, SERVICES):
                items = (await c.list_all(rt, ns, label_selector=SELECTOR))["items"]
                left += [f"{rt.plural}/{i['metadata']['name']}" for i in items]
            return left

        async def all_gone() -> bool:
            return not await nothing_left()

        await eventually("compose objects removed", all_gone, 60, poll=0.5)
    finally:
        if not down:  # free the NodePorts for later tests of the session
            await asyncio.to_thread(run_tug, "compose", "down", *common)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

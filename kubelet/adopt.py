"""Finding the pods a node's runtime holds, for re-adoption and orphan cleanup.

After a restart the node agent keeps no state of its own: everything it needs is in the CRI
labels it wrote (:mod:`kubelet.labels`). Pods still bound to the node get a worker that simply
observes what runs and carries on — matching containers are left untouched and restart counts
come back from the annotations. Sandboxes and containers of pods the API server no longer has
(deleted while the agent was down, or never known) are orphans and are removed.

Only objects labelled with this node's name are considered, so other users of the same runtime
(another node agent, tests) are never touched.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import labels as L
from .cri.client import AsyncRuntimeClient


@dataclass(frozen=True)
class RuntimePod:
    """A pod as the runtime knows it."""

    uid: str
    name: str
    namespace: str


async def runtime_pods(runtime: AsyncRuntimeClient, node: str) -> dict[str, RuntimePod]:
    """Every pod uid with a sandbox or a container labelled for ``node``."""
    out: dict[str, RuntimePod] = {}
    selector = {L.NODE: node}
    for s in await runtime.list_pod_sandbox(labels=selector):
        uid = s.labels.get(L.POD_UID) or s.metadata.uid
        out[uid] = RuntimePod(uid, s.metadata.name, s.metadata.namespace)
    for c in await runtime.list_containers(labels=selector):
        uid = c.labels.get(L.POD_UID, "")
        if uid and uid not in out:
            out[uid] = RuntimePod(
                uid, c.labels.get(L.POD_NAME, ""), c.labels.get(L.POD_NAMESPACE, "")
            )
    return out


def orphans(found: dict[str, RuntimePod], known_uids: set[str]) -> list[RuntimePod]:
    """The runtime pods whose uid the API server does not have on this node."""
    return [p for uid, p in sorted(found.items()) if uid not in known_uids]


def stub_pod(p: RuntimePod) -> dict:
    """A minimal pod dict naming an orphan, enough for a worker to tear it down."""
    return {"metadata": {"uid": p.uid, "name": p.name, "namespace": p.namespace}}

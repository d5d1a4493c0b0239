"""The CRI labels and annotations the node agent puts on sandboxes and containers.

They are the agent's only memory across restarts: a restarted agent finds its pods, their
containers and restart counts again by reading them back (see :mod:`kubelet.adopt`). The
``io.kubernetes.*`` keys are the ones the Kubernetes kubelet uses; ``tugboat.io/node`` scopes
everything to one node, so several agents (or tests) may share a runtime without touching each
other's pods.
"""

from __future__ import annotations

POD_NAME = "io.kubernetes.pod.name"
POD_NAMESPACE = "io.kubernetes.pod.namespace"
POD_UID = "io.kubernetes.pod.uid"
CONTAINER_NAME = "io.kubernetes.container.name"
NODE = "tugboat.io/node"
CONTAINER_TYPE = "tugboat.io/container-type"  # "init" or "app"

# annotations
RESTART_COUNT = "io.kubernetes.container.restartCount"
CONTAINER_HASH = "io.kubernetes.container.hash"
GRACE_PERIOD = "io.kubernetes.pod.terminationGracePeriod"
PRE_STOP = "tugboat.io/pre-stop"  # JSON of the container's lifecycle.preStop handler


def pod_labels(pod_name: str, namespace: str, uid: str, node: str) -> dict[str, str]:
    return {POD_NAME: pod_name, POD_NAMESPACE: namespace, POD_UID: uid, NODE: node}

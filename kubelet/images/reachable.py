"""Which registries the node agent can reach, for ``imagePullPolicy: Always``.

Kubernetes calls CRI ``PullImage`` for every container start under ``Always``, present image or
not. Here the machine is offline: a pull from ``docker.io`` fails even when the image is present
(imported with ``tug image load``/``hack/up.sh``), and containerd always goes to the registry
(RUNTIME.md). So ``Always`` re-pulls a present image only from a registry reachable here: a
loopback registry with a port (``localhost:5000``, ``127.0.0.1:5000``, ``[::1]:5000``, as
``tug registry up`` runs) or a host the agent is configured to treat as local
(``tug kubelet --local-registries``). For any other host a present image is used as is. A
bare ``localhost/NAME`` (no port) names a locally imported image, not a registry.
"""

from __future__ import annotations

from collections.abc import Collection

from kubelet.cri.names import normalize_image

LOOPBACK = frozenset({"localhost", "127.0.0.1", "[::1]"})


def registry_host(image: str) -> str:
    """``HOST[:PORT]`` of ``image`` once normalised (``docker.io`` for bare names; ``""`` for an
    image id)."""
    ref = normalize_image(image)
    return "" if ref.startswith("sha256:") else ref.split("/", 1)[0]


def reachable(image: str, local_hosts: Collection[str] = ()) -> bool:
    """Whether ``image``'s registry is reachable from this node (see the module docstring).

    ``local_hosts`` entries match either the whole ``HOST:PORT`` or the host alone."""
    host = registry_host(image)
    if not host:
        return False
    name, sep, port = host.rpartition(":")
    if not sep or not port.isdigit():
        name = host
    if host in local_hosts or name in local_hosts:
        return True
    return bool(sep) and port.isdigit() and name in LOOPBACK

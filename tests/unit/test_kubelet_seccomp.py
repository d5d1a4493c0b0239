"""Seccomp profiles the node agent asks the runtime for (pure: pod spec → CRI configs)."""

from __future__ import annotations

import pytest

from kubelet import specs
from kubelet.cri import api_pb2 as pb

P = pb.SecurityProfile
NODE = specs.NodeContext(name="n1", log_root="/logs", cgroup_root="/r", memory_capacity=1 << 30)


def pod(spec: dict | None = None, container: dict | None = None) -> dict:
    return {
        "metadata": {"uid": "u1", "name": "p", "namespace": "default"},
        "spec": {
            "containers": [{"name": "c", "image": "busybox", **(container or {})}],
            **(spec or {}),
        },
    }


def profiles(p: dict) -> tuple[int, int]:
    """(the sandbox's profile type, the container's)."""
    sandbox = specs.sandbox_config(p, NODE).linux.security_context.seccomp
    c = specs.spec(p)["containers"][0]
    container = specs.container_config(p, c, NODE, restart_count=0, init=False, mounts=[])
    return sandbox.profile_type, container.linux.security_context.seccomp.profile_type


@pytest.mark.parametrize(
    ("p", "expected"),
    [
        pytest.param(pod(), (P.Unconfined, P.RuntimeDefault), id="default"),
        pytest.param(
            pod({"shareProcessNamespace": True}),
            (P.RuntimeDefault, P.RuntimeDefault),
            id="shared PID namespace: pause is confined too",
        ),
        pytest.param(
            pod({"hostPID": True}),
            (P.RuntimeDefault, P.RuntimeDefault),
            id="host PID namespace: pause is confined too",
        ),
        pytest.param(
            pod({"securityContext": {"seccompProfile": {"type": "RuntimeDefault"}}}),
            (P.RuntimeDefault, P.RuntimeDefault),
            id="pod asks for RuntimeDefault",
        ),
        pytest.param(
            pod({"securityContext": {"seccompProfile": {"type": "Unconfined"}}}),
            (P.Unconfined, P.Unconfined),
            id="pod asks for Unconfined",
        ),
        pytest.param(
            pod(container={"securityContext": {"seccompProfile": {"type": "Unconfined"}}}),
            (P.Unconfined, P.Unconfined),
            id="container asks for Unconfined",
        ),
        pytest.param(
            pod(
                {"securityContext": {"seccompProfile": {"type": "Unconfined"}}},
                {"securityContext": {"seccompProfile": {"type": "RuntimeDefault"}}},
            ),
            (P.Unconfined, P.RuntimeDefault),
            id="container overrides the pod",
        ),
    ],
)
def test_profiles(p: dict, expected: tuple[int, int]) -> None:
    assert profiles(p) == expected


def test_localhost_profile_is_passed_through() -> None:
    p = pod(
        {"securityContext": {"seccompProfile": {"type": "Localhost", "localhostProfile": "x.json"}}}
    )
    sandbox = specs.sandbox_config(p, NODE).linux.security_context.seccomp
    assert (sandbox.profile_type, sandbox.localhost_ref) == (P.Localhost, "x.json")

"""Which registries ``imagePullPolicy: Always`` re-pulls a present image from."""

from __future__ import annotations

import pytest

from kubelet.images.reachable import reachable, registry_host


@pytest.mark.parametrize(
    ("image", "local", "expected"),
    [
        ("localhost:5000/app:1", (), True),
        ("127.0.0.1:41234/e2e/app:v", (), True),
        ("[::1]:5000/app", (), True),
        ("localhost/busybox:1.35", (), False),  # an imported image, no registry behind it
        ("busybox:1.35", (), False),  # docker.io: unreachable offline
        ("docker.io/tugboat/web:1", (), False),
        ("registry.lab:5000/app:1", ("registry.lab:5000",), True),
        ("registry.lab:5000/app:1", ("registry.lab",), True),
        ("registry.lab/app:1", ("registry.lab",), True),
        ("registry.lab:5000/app:1", ("registry.lab:6000",), False),
        ("sha256:" + "a" * 64, (), False),
    ],
    ids=lambda v: str(v),
)
def test_reachable(image: str, local: tuple[str, ...], expected: bool) -> None:
    assert reachable(image, local) is expected


def test_registry_host_normalises() -> None:
    assert registry_host("busybox") == "docker.io"
    assert registry_host("localhost:5000/app") == "localhost:5000"
    assert registry_host("sha256:" + "b" * 64) == ""

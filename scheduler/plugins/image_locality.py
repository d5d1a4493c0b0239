"""ImageLocality: prefer nodes that already hold the pod's images, weighted by image size and by
how widely the image is spread (an image on every node says little)."""

from __future__ import annotations

from collections.abc import Sequence

from scheduler.cache import NodeInfo, Snapshot
from scheduler.framework import (
    MAX_NODE_SCORE,
    OK,
    SKIP,
    CycleState,
    PreScorePlugin,
    ScorePlugin,
    Status,
)

MB = 1024 * 1024
MIN_THRESHOLD = 23 * MB
MAX_CONTAINER_THRESHOLD = 1000 * MB


def normalized_image_name(name: str) -> str:
    """``nginx`` → ``nginx:latest``; names with a tag or digest are kept."""
    last = name.rsplit("/", 1)[-1]
    if "@" in name or ":" in last:
        return name
    return f"{name}:latest"


def images_of(pod: dict) -> list[str]:
    return [
        normalized_image_name(c["image"])
        for c in (pod.get("spec") or {}).get("containers") or ()
        if c.get("image")
    ]


def image_score(sum_scores: int, num_containers: int) -> int:
    top = MAX_CONTAINER_THRESHOLD * num_containers
    clamped = min(max(sum_scores, MIN_THRESHOLD), top)
    return MAX_NODE_SCORE * (clamped - MIN_THRESHOLD) // (top - MIN_THRESHOLD)


class ImageLocality(PreScorePlugin, ScorePlugin):
    name = "ImageLocality"

    def pre_score(
        self, state: CycleState, pod: dict, nodes: Sequence[NodeInfo], snapshot: Snapshot
    ) -> Status:
        if not snapshot.any_images:
            return SKIP
        images = images_of(pod)
        if not images:
            return SKIP
        spread = {img: snapshot.image_spread(img) for img in set(images)}
        state[self.name] = (images, spread)
        return OK

    def score(self, state: CycleState, pod: dict, node: NodeInfo) -> int:
        images, spread = state[self.name]
        total = sum(int(node.images[i] * spread[i]) for i in images if i in node.images)
        return image_score(total, len(images))

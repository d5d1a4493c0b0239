"""The plan types the pure rollout functions return and the controller applies."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Scale:
    """Set ReplicaSet ``name``'s ``spec.replicas`` to ``replicas``."""

    name: str
    replicas: int


@dataclass(frozen=True)
class ScalePlan:
    """ReplicaSet resizes to apply in order; empty when nothing needs to change."""

    scales: tuple[Scale, ...] = field(default_factory=tuple)

    def __bool__(self) -> bool:
        return bool(self.scales)

    def as_dict(self) -> dict[str, int]:
        return {s.name: s.replicas for s in self.scales}

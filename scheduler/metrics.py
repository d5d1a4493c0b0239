"""The scheduler's Prometheus metrics (names follow kube-scheduler's)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

SCHEDULED = "scheduled"
UNSCHEDULABLE = "unschedulable"
ERROR = "error"


class SchedulerMetrics:
    """Attempts by result, attempt latency, end-to-end latency, queue sizes, preemptions."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.attempts = Counter(
            "scheduler_schedule_attempts_total",
            "Scheduling attempts by result.",
            ["result", "profile"],
            registry=self.registry,
        )
        self.attempt_duration = Histogram(
            "scheduler_scheduling_attempt_duration_seconds",
            "Scheduling attempt latency (the algorithm, not the binding).",
            ["result", "profile"],
            buckets=(0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 1),
            registry=self.registry,
        )
        # (result, profile) → the labelled attempts counter and duration histogram
        self._attempt_children: dict[tuple[str, str], tuple[Any, Any]] = {}
        self.e2e_duration = Histogram(
            "scheduler_pod_scheduling_duration_seconds",
            "From a pod's first scheduling attempt to its successful binding.",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=self.registry,
        )
        self.binding_duration = Histogram(
            "scheduler_binding_duration_seconds",
            "Latency of the pods/binding POST (the API server's side of a placement).",
            buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5),
            registry=self.registry,
        )
        self.pending = Gauge(
            "scheduler_pending_pods",
            "Pending pods by queue (active, backoff, unschedulable, gated).",
            ["queue"],
            registry=self.registry,
        )
        self.preemption_attempts = Counter(
            "scheduler_preemption_attempts_total",
            "Preemption attempts.",
            registry=self.registry,
        )
        self.preemption_victims = Counter(
            "scheduler_preemption_victims",
            "Pods evicted by preemption.",
            registry=self.registry,
        )

    def watch_queue(self, sizes: Callable[[], dict[str, int]]) -> None:
        """Report queue sizes at scrape time."""
        for name in ("active", "backoff", "unschedulable", "gated"):
            self.pending.labels(queue=name).set_function(_size_of(sizes, name))

    def observe(self, result: str, seconds: float, profile: str = "default-scheduler") -> None:
        children = self._attempt_children.get((result, profile))
        if children is None:
            children = self._attempt_children[result, profile] = (
                self.attempts.labels(result=result, profile=profile),
                self.attempt_duration.labels(result=result, profile=profile),
            )
        children[0].inc()
        children[1].observe(seconds)


def _size_of(sizes: Callable[[], dict[str, int]], name: str) -> Callable[[], float]:
    return lambda: sizes()[name]

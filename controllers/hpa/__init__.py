"""The HorizontalPodAutoscaler controller, split by concern.

* :mod:`.replicas` — the replica calculator (pure): pods + samples + target → replicas;
* :mod:`.behavior` — stabilisation windows and rate policies (pure, explicit history);
* :mod:`.metrics` — ``spec.metrics`` + ``PodMetrics`` → one proposal per metric (pure);
* :mod:`.controller` — wiring, reconcile, and the writes (scale, status, events).
"""

from controllers.hpa.controller import Config, HorizontalPodAutoscalerController

__all__ = ["Config", "HorizontalPodAutoscalerController"]

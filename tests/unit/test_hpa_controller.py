"""The HPA controller's reconcile against a fake client, a fake metrics source and a fake clock:
what it writes (scale, status, events) for each situation."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from controllers.hpa.controller import Config, HorizontalPodAutoscalerController
from controllers.objects import format_time
from controllers.testing import FakeClient, FakeRecorder, store_of
from machinery.kinds import builtin, lookup

DEPLOYMENTS, DAEMONSETS = lookup("deployments"), lookup("daemonsets")
HPAS = builtin("autoscaling/v2", "HorizontalPodAutoscaler")
T0 = 2_000_000.0


class ScaleClient(FakeClient):
    """FakeClient plus the ``scale`` subresource of kinds that have one."""

    async def get(self, rt, name, namespace=None, *, subresource=None):
        obj = await super().get(rt, name, namespace)
        if subresource != "scale":
            return obj
        return {
            "kind": "Scale",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"replicas": obj["spec"]["replicas"]},
            "status": {"replicas": obj["spec"]["replicas"], "selector": "app=web"},
        }

    async def update(self, rt, obj, *, subresource=None):
        if subresource != "scale":
            return await super().update(rt, obj, subresource=subresource)
        m = obj["metadata"]
        self._record("update", rt, m.get("namespace"), m["name"], "scale", obj)
        current = self._get(rt, m.get("namespace"), m["name"])
        current["spec"]["replicas"] = obj["spec"]["replicas"]
        return obj


class Metrics:
    def __init__(self) -> None:
        self.millicores: dict[str, int] = {}

    async def pod_metrics(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        return [
            {
                "metadata": {"name": n, "namespace": namespace},
                "timestamp": format_time(T0 - 5),
                "window": "10s",
                "containers": [{"name": "app", "usage": {"cpu": f"{m}m"}}],
            }
            for n, m in self.millicores.items()
        ]


def pod(name: str) -> dict:
    return {
        "metadata": {"name": name, "namespace": "ns", "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "app", "resources": {"requests": {"cpu": "100m"}}}]},
        "status": {
            "phase": "Running",
            "startTime": format_time(T0 - 3600),
            "conditions": [
                {"type": "Ready", "status": "True", "lastTransitionTime": format_time(T0 - 3600)}
            ],
        },
    }


def hpa(kind: str = "Deployment", api_version: str = "apps/v1", **spec: Any) -> dict:
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "web", "namespace": "ns", "generation": 1},
        "spec": {
            "scaleTargetRef": {"apiVersion": api_version, "kind": kind, "name": "web"},
            "minReplicas": 1,
            "maxReplicas": 10,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": 50},
                    },
                }
            ],
            **spec,
        },
    }


def make(obj: dict, replicas: int = 2, pods: int = 2):
    client = ScaleClient()
    client.seed(
        DEPLOYMENTS,
        {"metadata": {"name": "web", "namespace": "ns"}, "spec": {"replicas": replicas}},
    )
    client.seed(DAEMONSETS, {"metadata": {"name": "web", "namespace": "ns"}, "spec": {}})
    stored = client.seed(HPAS, obj)
    metrics = Metrics()
    now = [T0]
    recorder = FakeRecorder()
    ctl = HorizontalPodAutoscalerController(
        client,
        hpas=store_of(stored),
        pods=store_of(*[pod(f"web-{i}") for i in range(pods)]),
        recorder=recorder,
        metrics=metrics,
        config=Config(sync_period=15),
        clock=lambda: now[0],
    )
    return ctl, client, metrics, recorder, now


def cond(obj: dict, ctype: str) -> dict:
    return next(c for c in obj["status"]["conditions"] if c["type"] == ctype)


async def test_scales_up_and_records_status_and_event():
    ctl, client, metrics, recorder, _ = make(hpa())
    metrics.millicores = {"web-0": 100, "web-1": 100}  # 100 % of request, target 50 %
    result = await ctl.reconcile("ns/web")
    assert result is not None and result.requeue_after == 15
    assert [a.resource for a in client.writes("update")] == [
        "deployments/scale",
        "horizontalpodautoscalers/status",
    ]
    assert client.stored(DEPLOYMENTS, "ns", "web")["spec"]["replicas"] == 4
    status = client.stored(HPAS, "ns", "web")["status"]
    assert (status["currentReplicas"], status["desiredReplicas"]) == (2, 4)
    assert status["currentMetrics"][0]["resource"]["current"] == {
        "averageUtilization": 100,
        "averageValue": "100m",
    }
    assert "lastScaleTime" in status
    assert cond(client.stored(HPAS, "ns", "web"), "AbleToScale")["reason"] == "SucceededRescale"
    assert cond(client.stored(HPAS, "ns", "web"), "ScalingActive")["reason"] == "ValidMetricFound"
    assert recorder.reasons() == ["SuccessfulRescale"]
    assert (
        "New size: 4; reason: cpu resource utilization (percentage of request) above target"
        in str(recorder.events)
    )


async def test_scale_down_waits_for_the_default_window():
    ctl, client, metrics, _, now = make(hpa(), replicas=4, pods=4)
    metrics.millicores = {f"web-{i}": 5 for i in range(4)}
    await ctl.reconcile("ns/web")
    assert client.stored(DEPLOYMENTS, "ns", "web")["spec"]["replicas"] == 4
    assert cond(client.stored(HPAS, "ns", "web"), "AbleToScale")["reason"] == "ScaleDownStabilized"
    ctl.hpas = store_of(client.stored(HPAS, "ns", "web"))
    now[0] = T0 + 301
    await ctl.reconcile("ns/web")
    assert client.stored(DEPLOYMENTS, "ns", "web")["spec"]["replicas"] == 1


@pytest.mark.parametrize(
    "kind,api_version,reason",
    [("DaemonSet", "apps/v1", "FailedGetScale"), ("Nope", "example.com/v1", "FailedGetScale")],
    ids=["no scale subresource", "unknown kind"],
)
async def test_unscalable_target_is_a_condition(kind, api_version, reason, monkeypatch):
    ctl, client, _, recorder, _ = make(hpa(kind, api_version))

    async def no_discovery(*_a, **_k):
        from machinery import errors

        raise errors.NotFound("no such group")

    monkeypatch.setattr(client, "request", no_discovery, raising=False)
    await ctl.reconcile("ns/web")
    c = cond(client.stored(HPAS, "ns", "web"), "AbleToScale")
    assert (c["status"], c["reason"]) == ("False", reason)
    assert recorder.reasons() == ["FailedGetScale"]
    assert not client.writes("update", "deployments/scale")


async def test_missing_metrics_api_sets_scaling_active_false():
    ctl, client, _, recorder, _ = make(hpa())
    await ctl.reconcile("ns/web")
    c = cond(client.stored(HPAS, "ns", "web"), "ScalingActive")
    assert (c["status"], c["reason"]) == ("False", "FailedGetResourceMetric")
    assert recorder.reasons() == ["FailedGetResourceMetric"]
    assert client.stored(DEPLOYMENTS, "ns", "web")["spec"]["replicas"] == 2


async def test_zero_replicas_disables_scaling():
    ctl, client, metrics, _, _ = make(hpa(), replicas=0)
    metrics.millicores = {"web-0": 100}
    await ctl.reconcile("ns/web")
    c = cond(client.stored(HPAS, "ns", "web"), "ScalingActive")
    assert (c["status"], c["reason"]) == ("False", "ScalingDisabled")
    assert client.stored(DEPLOYMENTS, "ns", "web")["spec"]["replicas"] == 0


async def test_replicas_above_max_are_brought_down_without_metrics():
    ctl, client, _, recorder, _ = make(hpa(), replicas=12)
    await ctl.reconcile("ns/web")
    assert client.stored(DEPLOYMENTS, "ns", "web")["spec"]["replicas"] == 10
    assert "Current number of replicas above Spec.MaxReplicas" in str(recorder.events)


async def test_unchanged_status_is_not_rewritten():
    ctl, client, metrics, _, _ = make(hpa())
    metrics.millicores = {"web-0": 50, "web-1": 50}
    await ctl.reconcile("ns/web")
    ctl.hpas = store_of(copy.deepcopy(client.stored(HPAS, "ns", "web")))
    before = len(client.writes("update"))
    await ctl.reconcile("ns/web")
    assert len(client.writes("update")) == before


async def test_deleted_autoscaler_forgets_history():
    ctl, _, metrics, _, _ = make(hpa())
    metrics.millicores = {"web-0": 50, "web-1": 50}
    await ctl.reconcile("ns/web")
    assert "ns/web" in ctl.history
    ctl.hpas = store_of()
    assert await ctl.reconcile("ns/web") is None
    assert "ns/web" not in ctl.history

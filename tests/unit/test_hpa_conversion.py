"""autoscaling/v1 ↔ v2 conversion of HorizontalPodAutoscalers (apiserver.conversion)."""

from __future__ import annotations

import orjson

from apiserver import conversion as cv
from machinery.kinds import Registry, builtin

V1 = builtin("autoscaling/v1", "HorizontalPodAutoscaler")
V2 = builtin("autoscaling/v2", "HorizontalPodAutoscaler")

V1_OBJ = {
    "apiVersion": "autoscaling/v1",
    "kind": "HorizontalPodAutoscaler",
    "metadata": {"name": "web", "namespace": "default"},
    "spec": {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
        "minReplicas": 1,
        "maxReplicas": 10,
        "targetCPUUtilizationPercentage": 50,
    },
    "status": {"currentReplicas": 2, "desiredReplicas": 3, "currentCPUUtilizationPercentage": 73},
}


def test_v1_to_v2_maps_cpu_target_and_current():
    v2 = cv.hpa_v1_to_v2(V1_OBJ)
    assert v2["apiVersion"] == "autoscaling/v2"
    assert v2["spec"]["metrics"] == [
        {
            "type": "Resource",
            "resource": {
                "name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": 50},
            },
        }
    ]
    assert "targetCPUUtilizationPercentage" not in v2["spec"]
    assert v2["status"]["currentMetrics"][0]["resource"]["current"] == {"averageUtilization": 73}
    assert V1_OBJ["spec"]["targetCPUUtilizationPercentage"] == 50  # input untouched


def test_round_trip_v1_is_identity():
    assert cv.hpa_v2_to_v1(cv.hpa_v1_to_v2(V1_OBJ)) == V1_OBJ


def test_v2_only_fields_survive_a_v1_round_trip():
    v2 = cv.hpa_v1_to_v2(V1_OBJ)
    memory = {
        "type": "Resource",
        "resource": {"name": "memory", "target": {"type": "AverageValue", "averageValue": "100Mi"}},
    }
    v2["spec"]["metrics"].append(memory)
    v2["spec"]["behavior"] = {"scaleDown": {"stabilizationWindowSeconds": 30}}
    v2["status"]["conditions"] = [{"type": "AbleToScale", "status": "True", "reason": "x"}]
    v1 = cv.hpa_v2_to_v1(v2)
    assert v1["spec"]["targetCPUUtilizationPercentage"] == 50
    assert "metrics" not in v1["spec"] and "behavior" not in v1["spec"]
    assert orjson.loads(v1["metadata"]["annotations"][cv.A_METRICS]) == [memory]
    back = cv.hpa_v1_to_v2(v1)
    assert back["spec"] == v2["spec"]
    assert back["status"]["conditions"] == v2["status"]["conditions"]
    assert "annotations" not in back["metadata"]


def test_routing_helpers():
    kinds = Registry()
    assert cv.needs_conversion(V1) and not cv.needs_conversion(V2)
    assert cv.storage_type(V1, kinds) == V2
    stored = orjson.dumps(cv.to_storage(V1, V1_OBJ))
    assert orjson.loads(cv.from_storage_raw(V1, stored)) == V1_OBJ
    assert cv.from_storage_raw(V2, stored) == stored
    legacy = orjson.dumps(V1_OBJ)  # stored in v1 shape before conversion existed
    assert orjson.loads(cv.from_storage_raw(V2, legacy))["spec"]["metrics"]

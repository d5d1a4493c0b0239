"""A resource served in two versions over one storage: HorizontalPodAutoscaler v1 and v2."""

from __future__ import annotations

import httpx
import orjson

V1 = "/apis/autoscaling/v1/namespaces/default/horizontalpodautoscalers"
V2 = "/apis/autoscaling/v2/namespaces/default/horizontalpodautoscalers"


def test_v1_and_v2_views_of_one_hpa(api):
    body = {
        "apiVersion": "autoscaling/v1",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "conv"},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
            "minReplicas": 1,
            "maxReplicas": 5,
            "targetCPUUtilizationPercentage": 60,
        },
    }
    r = httpx.post(api.url + V1, json=body)
    assert r.status_code == 201, r.text
    assert r.json()["apiVersion"] == "autoscaling/v1"
    assert r.json()["spec"]["targetCPUUtilizationPercentage"] == 60
    v2 = httpx.get(f"{api.url}{V2}/conv").json()
    assert v2["apiVersion"] == "autoscaling/v2"
    assert v2["spec"]["metrics"] == [
        {
            "type": "Resource",
            "resource": {
                "name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": 60},
            },
        }
    ]
    r = httpx.patch(
        f"{api.url}{V1}/conv",
        json={"spec": {"targetCPUUtilizationPercentage": 70}},
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert r.status_code == 200 and r.json()["spec"]["targetCPUUtilizationPercentage"] == 70
    listed = httpx.get(api.url + V1).json()
    item = next(i for i in listed["items"] if i["metadata"]["name"] == "conv")
    assert item["apiVersion"] == "autoscaling/v1" and "metrics" not in item["spec"]
    v2 = httpx.get(f"{api.url}{V2}/conv").json()
    assert v2["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"] == 70
    with httpx.stream(
        "GET", api.url + V1, params={"watch": "1", "resourceVersion": "0"}, timeout=10
    ) as w:
        first = orjson.loads(next(line for line in w.iter_lines() if line))
    assert first["object"]["apiVersion"] == "autoscaling/v1"

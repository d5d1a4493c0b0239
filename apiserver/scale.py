"""The ``scale`` subresource: an autoscaling/v1 ``Scale`` view of ``spec.replicas``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response

from apiserver import codec
from apiserver.registry import parse_rv
from machinery import errors, patch
from machinery.selectors import LabelSelector

if TYPE_CHECKING:
    from apiserver.rest import ResourceHandler, Target


def to_scale(obj: dict[str, Any]) -> dict[str, Any]:
    m = obj["metadata"]
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    selector = spec.get("selector")
    if isinstance(selector, dict):
        selector = str(LabelSelector.from_dict(selector))
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            k: m[k]
            for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
            if k in m
        },
        "spec": {"replicas": int(spec.get("replicas", 0))},
        "status": {"replicas": int(status.get("replicas", 0)), "selector": selector or ""},
    }


async def handle(h: ResourceHandler, request: Request, t: Target) -> Response:
    assert t.name is not None
    reg = h.registry
    if request.method == "GET":
        return codec.json_response(to_scale(reg.get(t.rt, t.namespace, t.name).obj))
    if request.method not in ("PUT", "PATCH"):
        raise errors.MethodNotAllowed(f"{request.method} is not allowed on scale")
    body = codec.decode(await request.body(), request.headers.get("content-type"))
    ptype = codec.PATCH_TYPES.get(codec.media_type(request.headers.get("content-type")))
    expected = None
    if request.method == "PUT":
        meta = body.get("metadata") if isinstance(body, dict) else None
        expected = parse_rv(meta.get("resourceVersion")) if isinstance(meta, dict) else None

    def change(cur: dict[str, Any]) -> dict[str, Any]:
        scale = to_scale(cur)
        if request.method == "PUT":
            new_scale = body
        elif ptype == "json":
            new_scale = patch.json_patch(scale, body)
        else:
            new_scale = patch.merge_patch(scale, body)
        replicas = ((new_scale or {}).get("spec") or {}).get("replicas")
        if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
            raise errors.invalid(
                "Scale",
                t.name or "",
                [
                    {
                        "reason": "FieldValueInvalid",
                        "field": "spec.replicas",
                        "message": f"Invalid value: {replicas!r}: must be greater than or "
                        "equal to 0",
                    }
                ],
                "autoscaling",
            )
        cur.setdefault("spec", {})["replicas"] = replicas
        return cur

    res = await reg.mutate(
        t.rt, t.namespace, t.name, change, codec.write_options(request), None, expected=expected
    )
    return codec.json_response(to_scale(res.obj))

"""Pod template hashing: the ``pod-template-hash`` label and ReplicaSet name suffix.

Two templates that mean the same pod must hash the same, whoever wrote them: the Deployment as
the user applied it, the ReplicaSet the controller made from it, or the template ``kubectl
rollout undo`` patches back after a round trip through Go structs (``creationTimestamp: null``,
``resources: {}``, ``false`` booleans omitted). So templates are hashed and compared only in
:func:`normalize_template` form: nulls and empty strings/lists/objects dropped (except where an
empty object means something, ``emptyDir: {}``), the API server's pod defaults filled in, and the
``pod-template-hash`` label removed.

The hash is FNV-1a 32-bit over the canonical JSON of the normalised template, followed by the
4-byte little-endian ``collisionCount`` when set, printed in decimal and safe-encoded with
Kubernetes' alphabet (no vowels, no confusable digits).
"""

from __future__ import annotations

import copy
import json
import struct
from typing import Any

POD_TEMPLATE_HASH = "pod-template-hash"

SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"

_FNV_OFFSET = 0x811C9DC5
_FNV_PRIME = 0x01000193

# Empty objects that are meaningful (a volume source with no fields).
_KEEP_EMPTY = frozenset({"emptyDir"})
# Non-pointer Go fields with ``omitempty``: their zero value and absence mean the same.
_ZERO_IS_ABSENT = {
    "hostNetwork": False,
    "hostPID": False,
    "hostIPC": False,
    "stdin": False,
    "stdinOnce": False,
    "tty": False,
    "readOnly": False,
    "hostPort": 0,
}

_POD_DEFAULTS = {
    "restartPolicy": "Always",
    "terminationGracePeriodSeconds": 30,
    "dnsPolicy": "ClusterFirst",
    "schedulerName": "default-scheduler",
}
_CONTAINER_DEFAULTS = {
    "terminationMessagePath": "/dev/termination-log",
    "terminationMessagePolicy": "File",
}
_PROBE_DEFAULTS = {
    "timeoutSeconds": 1,
    "periodSeconds": 10,
    "successThreshold": 1,
    "failureThreshold": 3,
}


def fnv32a(data: bytes, start: int = _FNV_OFFSET) -> int:
    h = start
    for byte in data:
        h ^= byte
        h = (h * _FNV_PRIME) & 0xFFFFFFFF
    return h


def safe_encode(text: str) -> str:
    """Kubernetes ``rand.SafeEncodeString``: each character mapped into the safe alphabet."""
    return "".join(SAFE_ALPHABET[ord(c) % len(SAFE_ALPHABET)] for c in text)


def default_image_pull_policy(image: str) -> str:
    """``Always`` for ``:latest`` or untagged images, else ``IfNotPresent`` (digests too)."""
    if "@" in image:
        return "IfNotPresent"
    last = image.rsplit("/", 1)[-1]
    tag = last.rsplit(":", 1)[1] if ":" in last else ""
    return "Always" if tag in ("", "latest") else "IfNotPresent"


def _clean(value: Any, key: str = "") -> Any:
    """Drop nulls, empties and Go zero-value artefacts; ``None`` means "drop me"."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if (
                k in _ZERO_IS_ABSENT
                and v == _ZERO_IS_ABSENT[k]
                and type(v) is type(_ZERO_IS_ABSENT[k])
            ):
                continue
            cleaned = _clean(v, k)
            if cleaned is not None:
                out[k] = cleaned
        return out if out or key in _KEEP_EMPTY else None
    if isinstance(value, list):
        items = [c for c in (_clean(v) for v in value) if c is not None]
        return items or None
    if value is None or value == "":
        return None
    return value


def _default_probe(probe: dict[str, Any]) -> None:
    for k, v in _PROBE_DEFAULTS.items():
        probe.setdefault(k, v)
    http = probe.get("httpGet")
    if isinstance(http, dict):
        http.setdefault("scheme", "HTTP")


def _default_container(c: dict[str, Any]) -> None:
    for k, v in _CONTAINER_DEFAULTS.items():
        c.setdefault(k, v)
    if c.get("image"):
        c.setdefault("imagePullPolicy", default_image_pull_policy(str(c["image"])))
    for port in c.get("ports") or []:
        if isinstance(port, dict):
            port.setdefault("protocol", "TCP")
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        if isinstance(c.get(probe), dict):
            _default_probe(c[probe])
    for env in c.get("env") or []:
        field_ref = ((env or {}).get("valueFrom") or {}).get("fieldRef")
        if isinstance(field_ref, dict):
            field_ref.setdefault("apiVersion", "v1")


def normalize_template(template: dict[str, Any] | None) -> dict[str, Any]:
    """The canonical form of a pod template used for hashing and equality (a new dict)."""
    tpl = copy.deepcopy(template or {})
    labels = (tpl.get("metadata") or {}).get("labels")
    if isinstance(labels, dict):
        labels.pop(POD_TEMPLATE_HASH, None)
    tpl = _clean(tpl) or {}
    spec = tpl.setdefault("spec", {})
    for k, v in _POD_DEFAULTS.items():
        spec.setdefault(k, v)
    for group in ("initContainers", "containers", "ephemeralContainers"):
        for c in spec.get(group) or []:
            if isinstance(c, dict):
                _default_container(c)
    return _clean(tpl) or {}


def compute_hash(template: dict[str, Any] | None, collision_count: int | None = None) -> str:
    """The ``pod-template-hash`` of ``template`` (see the module docstring)."""
    canonical = json.dumps(
        normalize_template(template), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    ).encode()
    h = fnv32a(canonical)
    if collision_count is not None:
        h = fnv32a(struct.pack("<I", collision_count & 0xFFFFFFFF), h)
    return safe_encode(str(h))


def equal_ignore_hash(a: dict[str, Any] | None, b: dict[str, Any] | None) -> bool:
    """Whether two pod templates describe the same pod (Kubernetes ``EqualIgnoreHash``, but on
    normalised templates)."""
    return normalize_template(a) == normalize_template(b)

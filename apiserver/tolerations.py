"""Kubernetes' DefaultTolerationSeconds admission, applied to every pod on create."""

from __future__ import annotations

from typing import Any

DEFAULT_TOLERATION_SECONDS = 300
NOT_READY_TAINTS = ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable")


def default_toleration_seconds(
    spec: dict[str, Any], seconds: int = DEFAULT_TOLERATION_SECONDS
) -> None:
    """Add ``{key, operator: Exists, effect: NoExecute, tolerationSeconds: seconds}`` for the
    not-ready and unreachable taints unless ``spec`` already tolerates that NoExecute taint
    (a toleration with that key, or an empty key with ``Exists``, and effect NoExecute or
    none)."""
    tolerations = list(spec.get("tolerations") or [])
    added = False
    for key in NOT_READY_TAINTS:
        covered = any(
            t.get("effect") in (None, "", "NoExecute")
            and (t.get("key") == key or (not t.get("key") and t.get("operator") == "Exists"))
            for t in tolerations
        )
        if not covered:
            tolerations.append(
                {
                    "key": key,
                    "operator": "Exists",
                    "effect": "NoExecute",
                    "tolerationSeconds": seconds,
                }
            )
            added = True
    if added:
        spec["tolerations"] = tolerations

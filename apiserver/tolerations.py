"""Kubernetes' DefaultTolerationSeconds admission, applied to every pod on create.

The seconds are the API server's ``--default-not-ready-toleration-seconds`` and
``--default-unreachable-toleration-seconds`` (both 300), set once at start with
:func:`configure`; like Kubernetes' admission plugin flags they hold for the whole process.
"""

from __future__ import annotations

from typing import Any

DEFAULT_TOLERATION_SECONDS = 300
NOT_READY = "node.kubernetes.io/not-ready"
UNREACHABLE = "node.kubernetes.io/unreachable"
NOT_READY_TAINTS = (NOT_READY, UNREACHABLE)
#: seconds per taint key, as the flags set them
SECONDS = dict.fromkeys(NOT_READY_TAINTS, DEFAULT_TOLERATION_SECONDS)


def configure(
    not_ready: int = DEFAULT_TOLERATION_SECONDS, unreachable: int = DEFAULT_TOLERATION_SECONDS
) -> None:
    """Set the seconds added for the not-ready and the unreachable taint."""
    SECONDS.update({NOT_READY: not_ready, UNREACHABLE: unreachable})


def default_toleration_seconds(spec: dict[str, Any], seconds: int | None = None) -> None:
    """Add ``{key, operator: Exists, effect: NoExecute, tolerationSeconds: S}`` for the
    not-ready and unreachable taints unless ``spec`` already tolerates that NoExecute taint
    (a toleration with that key, or an empty key with ``Exists``, and effect NoExecute or
    none). ``S`` is ``seconds`` if given, else the configured seconds for that taint."""
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
                    "tolerationSeconds": SECONDS[key] if seconds is None else seconds,
                }
            )
            added = True
    if added:
        spec["tolerations"] = tolerations

"""``scheduling.k8s.io/v1``: PriorityClass."""

from __future__ import annotations

from typing import Any, ClassVar

from .core import Object
from .meta import opt, req
from .validation import FieldErrors

#: Largest priority a user-defined class may have (system classes go above it).
HIGHEST_USER_PRIORITY = 1_000_000_000


class PriorityClass(Object):
    """A name for a pod priority."""

    schema_prefix: ClassVar[str] = "io.k8s.api.scheduling.v1"
    value: int = req("The priority; higher schedules (and preempts) first.")
    global_default: bool | None = opt("Use for pods without a priorityClassName.")
    description: str | None = opt("When to use this class.")
    preemption_policy: str | None = opt(
        "PreemptLowerPriority or Never; defaults to PreemptLowerPriority."
    )


def default_priority_class(pc: PriorityClass) -> None:
    if pc.preemption_policy is None:
        pc.preemption_policy = "PreemptLowerPriority"


def validate_priority_class(
    pc: PriorityClass, old: dict[str, Any] | None, errs: FieldErrors
) -> None:
    name = pc.metadata.name if pc.metadata else ""
    if pc.value > HIGHEST_USER_PRIORITY and not (name or "").startswith("system-"):
        errs.forbidden(
            "value", f"maximum allowed value of a user defined priority is {HIGHEST_USER_PRIORITY}"
        )
    errs.enum("preemptionPolicy", pc.preemption_policy, ("Never", "PreemptLowerPriority"))
    if old is not None and old.get("value") is not None and old["value"] != pc.value:
        errs.forbidden("value", "may not be changed in an update.")

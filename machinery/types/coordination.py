"""``coordination.k8s.io/v1``: Lease (leader election, node heartbeats)."""

from __future__ import annotations

from typing import Any, ClassVar

from .core import Object
from .meta import K8sModel, MicroTime, opt
from .validation import FieldErrors


class LeaseSpec(K8sModel):
    """Who holds the lease and until when."""

    schema_prefix: ClassVar[str] = "io.k8s.api.coordination.v1"
    holder_identity: str | None = opt("Identity of the current holder.")
    lease_duration_seconds: int | None = opt(
        "Seconds a candidate waits after renewTime before taking over."
    )
    acquire_time: MicroTime | None = opt("When the current holder acquired the lease.")
    renew_time: MicroTime | None = opt("When the holder last renewed the lease.")
    lease_transitions: int | None = opt("Times the lease changed holder.")
    strategy: str | None = opt("Leader election strategy.")
    preferred_holder: str | None = opt("Holder the strategy prefers.")


class Lease(Object):
    """A lock with an expiry, renewed by its holder."""

    schema_prefix: ClassVar[str] = "io.k8s.api.coordination.v1"
    spec: LeaseSpec | None = opt("Desired state.")


def validate_lease(lease: Lease, old: dict[str, Any] | None, errs: FieldErrors) -> None:
    spec = lease.spec
    if spec is None:
        return
    if spec.lease_duration_seconds is not None and spec.lease_duration_seconds <= 0:
        errs.invalid(
            "spec.leaseDurationSeconds", spec.lease_duration_seconds, "must be greater than 0"
        )
    errs.non_negative("spec.leaseTransitions", spec.lease_transitions)

"""ServiceAccount controller: every namespace has a ``default`` ServiceAccount.

Wiring: an informer on Namespaces and one on ServiceAccounts named ``default``; a namespace
added or changed enqueues its name, a deleted ``default`` ServiceAccount enqueues its namespace.

``reconcile(namespace)``: when the namespace exists, is not being deleted and has no ``default``
ServiceAccount in the cache, one is created (Kubernetes' serviceaccounts-controller). An
``AlreadyExists`` (the cache was behind) is success; a namespace gone or terminating meanwhile
(NotFound, the Forbidden "being terminated") is left alone. Other errors, such as a
Forbidden from authorization, retry with backoff.
"""

from __future__ import annotations

from typing import Any

from controllers.objects import is_deleting, name_of, namespace_of
from machinery import errors
from machinery.controller import Result
from machinery.informer import InformerFactory, Store
from machinery.kinds import lookup
from machinery.workqueue import WorkQueue

Obj = dict[str, Any]
NAMESPACES = lookup("namespaces")
SERVICEACCOUNTS = lookup("serviceaccounts")
DEFAULT_NAME = "default"


class ServiceAccountController:
    name = "serviceaccount"

    def __init__(
        self,
        client: Any,
        *,
        namespaces: Store,
        service_accounts: Store,
        queue: WorkQueue | None = None,
    ) -> None:
        self.client = client
        self.namespaces = namespaces
        self.service_accounts = service_accounts
        self.queue = queue or WorkQueue(name=self.name)

    @classmethod
    def from_factory(
        cls, factory: InformerFactory, recorder: Any = None, **kw: Any
    ) -> ServiceAccountController:
        ns_inf = factory.informer(NAMESPACES)
        sa_inf = factory.informer(SERVICEACCOUNTS, field_selector=f"metadata.name={DEFAULT_NAME}")
        ctl = cls(factory.client, namespaces=ns_inf.store, service_accounts=sa_inf.store, **kw)
        ns_inf.add_handler(ctl.enqueue_namespace, lambda _old, new: ctl.enqueue_namespace(new))
        sa_inf.add_handler(on_delete=ctl.enqueue_owner)
        return ctl

    # -- event handlers -------------------------------------------------------------------------

    def enqueue_namespace(self, ns: Obj) -> None:
        self.queue.add(name_of(ns))

    def enqueue_owner(self, sa: Obj) -> None:
        if name_of(sa) == DEFAULT_NAME:
            self.queue.add(namespace_of(sa))

    # -- reconcile ------------------------------------------------------------------------------

    async def reconcile(self, key: str) -> Result | None:
        ns = self.namespaces.get(key)
        if ns is None or is_deleting(ns) or (ns.get("status") or {}).get("phase") == "Terminating":
            return None
        if self.service_accounts.get(f"{key}/{DEFAULT_NAME}") is not None:
            return None
        body = {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": DEFAULT_NAME, "namespace": key},
        }
        try:
            await self.client.create(SERVICEACCOUNTS, body, key)
        except (errors.AlreadyExists, errors.NotFound):
            pass
        except errors.Forbidden as err:
            if not namespace_terminating(err):
                raise
        return None


def namespace_terminating(err: errors.ApiError) -> bool:
    """Whether a create failed only because its namespace is being deleted."""
    return "because it is being terminated" in err.message

"""Root CA publisher: a ``kube-root-ca.crt`` ConfigMap in every namespace.

Wiring: an informer on Namespaces and one on ConfigMaps named ``kube-root-ca.crt``; a namespace
added or changed enqueues its name, a change to or deletion of the ConfigMap enqueues its
namespace.

``reconcile(namespace)``: when the namespace exists and is not being deleted, its
``kube-root-ca.crt`` holds exactly ``data: {ca.crt: <the CA>}`` and Kubernetes' description
annotation: created when missing, put back (a resourceVersion-guarded update) when someone
changed it. The CA is the one the API server serves with: ``--root-ca-file``, else the CA of
the controller-manager's own kubeconfig, as kube-controller-manager does. With no CA (an
insecure, plain-HTTP API server) nothing is published; :meth:`RootCACertPublisher.from_factory`
logs that once.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

from controllers.objects import annotations_of, is_deleting, name_of, namespace_of
from machinery import errors
from machinery.controller import Result
from machinery.informer import InformerFactory, Store
from machinery.kinds import lookup
from machinery.workqueue import WorkQueue

log = logging.getLogger(__name__)

Obj = dict[str, Any]
NAMESPACES = lookup("namespaces")
CONFIGMAPS = lookup("configmaps")
CONFIGMAP_NAME = "kube-root-ca.crt"
CA_KEY = "ca.crt"
DESCRIPTION_ANNOTATION = "kubernetes.io/description"
DESCRIPTION = (
    "Contains a CA bundle that can be used to verify the kube-apiserver when using internal "
    "endpoints such as the internal service IP or kubernetes.default.svc. No other usage is "
    "guaranteed across distributions of Kubernetes clusters."
)


class RootCACertPublisher:
    name = "root-ca-cert-publisher"

    def __init__(
        self,
        client: Any,
        *,
        namespaces: Store,
        configmaps: Store,
        root_ca: str | None,
        queue: WorkQueue | None = None,
    ) -> None:
        self.client = client
        self.namespaces = namespaces
        self.configmaps = configmaps
        self.root_ca = root_ca
        self.queue = queue or WorkQueue(name=self.name)

    @classmethod
    def from_factory(
        cls, factory: InformerFactory, recorder: Any = None, *, root_ca: bytes | None = None
    ) -> RootCACertPublisher:
        """``root_ca``: the PEM bundle to publish (None: publish nothing)."""
        ns_inf = factory.informer(NAMESPACES)
        cm_inf = factory.informer(CONFIGMAPS, field_selector=f"metadata.name={CONFIGMAP_NAME}")
        ca = root_ca.decode() if root_ca else None
        ctl = cls(factory.client, namespaces=ns_inf.store, configmaps=cm_inf.store, root_ca=ca)
        if ca is None:
            log.warning(
                "no root CA (the API server is insecure, or no --root-ca-file): "
                "not publishing %s ConfigMaps",
                CONFIGMAP_NAME,
            )
            return ctl
        ns_inf.add_handler(ctl.enqueue_namespace, lambda _old, new: ctl.enqueue_namespace(new))
        cm_inf.add_handler(
            ctl.enqueue_configmap,
            lambda _old, new: ctl.enqueue_configmap(new),
            ctl.enqueue_configmap,
        )
        return ctl

    # -- event handlers -------------------------------------------------------------------------

    def enqueue_namespace(self, ns: Obj) -> None:
        self.queue.add(name_of(ns))

    def enqueue_configmap(self, cm: Obj) -> None:
        if name_of(cm) == CONFIGMAP_NAME:
            self.queue.add(namespace_of(cm))

    # -- reconcile ------------------------------------------------------------------------------

    async def reconcile(self, key: str) -> Result | None:
        if self.root_ca is None:
            return None
        ns = self.namespaces.get(key)
        if ns is None or is_deleting(ns) or (ns.get("status") or {}).get("phase") == "Terminating":
            return None
        data = {CA_KEY: self.root_ca}
        cached = self.configmaps.get(f"{key}/{CONFIGMAP_NAME}")
        try:
            if cached is None:
                await self.client.create(CONFIGMAPS, self._desired(key, data), key)
            elif not _current(cached, data):
                body = copy.deepcopy(cached)
                body["data"] = data
                body.pop("binaryData", None)
                body["metadata"].setdefault("annotations", {})[DESCRIPTION_ANNOTATION] = DESCRIPTION
                await self.client.update(CONFIGMAPS, body)
        except (errors.AlreadyExists, errors.NotFound, errors.Conflict):
            pass  # the cache is behind; the event that follows brings the key back
        except errors.Forbidden as err:
            if "because it is being terminated" not in err.message:
                raise
        return None

    @staticmethod
    def _desired(namespace: str, data: dict[str, str]) -> Obj:
        return {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": CONFIGMAP_NAME,
                "namespace": namespace,
                "annotations": {DESCRIPTION_ANNOTATION: DESCRIPTION},
            },
            "data": data,
        }


def _current(cm: Obj, data: dict[str, str]) -> bool:
    return (
        cm.get("data") == data
        and not cm.get("binaryData")
        and annotations_of(cm).get(DESCRIPTION_ANNOTATION) == DESCRIPTION
    )

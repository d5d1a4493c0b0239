"""ServiceAccount admission for pods (Kubernetes' ``ServiceAccount`` admission plugin).

Called by ``PodStrategy.prepare_create`` (before the pod is typed and validated) with every pod
being created. Contracts, as in Kubernetes:

- ``spec.serviceAccountName`` defaults to ``default`` (the deprecated ``spec.serviceAccount``
  mirrors it, as the v1 API does).
- A pod that names a ServiceAccount that does not exist is refused: 403 ``pods "p" is
  forbidden: error looking up service account NS/NAME: serviceaccount "NAME" not found``.
- Unless ``automountServiceAccountToken`` is false (the pod's setting wins over the
  ServiceAccount's), the pod gets a ``kube-api-access-XXXXX`` projected volume (a
  ``serviceAccountToken`` at ``token`` with ``expirationSeconds: 3607``, ``ca.crt`` from the
  ``kube-root-ca.crt`` ConfigMap, ``namespace`` from ``metadata.namespace``; ``defaultMode``
  420) mounted read-only at ``/var/run/secrets/kubernetes.io/serviceaccount`` in every init,
  app and ephemeral container that has no mount at that path already. A pod that already has a
  ``kube-api-access-*`` volume keeps it.
- Mirror pods (``kubernetes.io/config.mirror``) get nothing and may not name a ServiceAccount.

Deliberate differences, so that pods still run where nothing creates ServiceAccounts (an API
server without a controller-manager, as many tests run it) or nothing can issue tokens:

- the ``default`` ServiceAccount may be missing: the pod is admitted, without the volume
  (Kubernetes refuses it until the ServiceAccount controller has made one); only a pod naming
  another ServiceAccount is refused when it is missing (charts often spell out ``default``);
- the volume is added only when this API server issues ServiceAccount tokens (a
  ``--service-account-key-file``, or ``--secure``): without a signing key no kubelet could
  fill it, and the pod would never start.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

from machinery import errors
from machinery.kinds import lookup

Obj = dict[str, Any]
SERVICEACCOUNTS = lookup("serviceaccounts")
DEFAULT_SERVICE_ACCOUNT = "default"
VOLUME_PREFIX = "kube-api-access-"
MOUNT_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"
ROOT_CA_CONFIGMAP = "kube-root-ca.crt"
ROOT_CA_KEY = "ca.crt"
TOKEN_EXPIRATION_SECONDS = 3607  # Kubernetes' value: 1 h plus a little, flagging old clients
DEFAULT_MODE = 0o644
MIRROR_ANNOTATION = "kubernetes.io/config.mirror"
_SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # Kubernetes' rand.String alphabet
_CONTAINER_LISTS = ("initContainers", "containers", "ephemeralContainers")


def random_suffix(n: int = 5) -> str:
    return "".join(secrets.choice(_SUFFIX_ALPHABET) for _ in range(n))


def api_access_volume(name: str) -> Obj:
    """The ``kube-api-access-*`` projected volume, shaped as Kubernetes shapes it."""
    return {
        "name": name,
        "projected": {
            "defaultMode": DEFAULT_MODE,
            "sources": [
                {
                    "serviceAccountToken": {
                        "expirationSeconds": TOKEN_EXPIRATION_SECONDS,
                        "path": "token",
                    }
                },
                {
                    "configMap": {
                        "name": ROOT_CA_CONFIGMAP,
                        "items": [{"key": ROOT_CA_KEY, "path": ROOT_CA_KEY}],
                    }
                },
                {
                    "downwardAPI": {
                        "items": [
                            {
                                "path": "namespace",
                                "fieldRef": {
                                    "apiVersion": "v1",
                                    "fieldPath": "metadata.namespace",
                                },
                            }
                        ]
                    }
                },
            ],
        },
    }


def should_automount(sa: Obj, pod: Obj) -> bool:
    """The pod's ``automountServiceAccountToken`` if set, else the ServiceAccount's, else
    true."""
    pod_says = (pod.get("spec") or {}).get("automountServiceAccountToken")
    if pod_says is not None:
        return bool(pod_says)
    sa_says = sa.get("automountServiceAccountToken")
    return True if sa_says is None else bool(sa_says)


def mount_token(pod: Obj, suffix: Callable[[], str] = random_suffix) -> None:
    """Add the API access volume and its mounts to ``pod`` in place (see the module
    docstring)."""
    spec = pod.setdefault("spec", {})
    volumes = spec.get("volumes") or []
    existing = next(
        (v["name"] for v in volumes if str(v.get("name", "")).startswith(VOLUME_PREFIX)), None
    )
    volume_name = existing or VOLUME_PREFIX + suffix()  # no other volume can have this name
    needed = False
    for kind in _CONTAINER_LISTS:
        for c in spec.get(kind) or []:
            mounts = c.get("volumeMounts") or []
            if any(m.get("mountPath") == MOUNT_PATH for m in mounts):
                continue
            mounts.append({"name": volume_name, "readOnly": True, "mountPath": MOUNT_PATH})
            c["volumeMounts"] = mounts
            needed = True
    if needed and existing is None:
        spec["volumes"] = [*volumes, api_access_volume(volume_name)]


def _forbidden(pod: Obj, message: str) -> errors.Forbidden:
    name = (pod.get("metadata") or {}).get("name") or ""
    return errors.Forbidden(
        f'pods "{name}" is forbidden: {message}', details={"name": name, "kind": "pods"}
    )


class ServiceAccountAdmission:
    """The plugin over the API server's registry; ``issues_tokens`` says whether the server
    can issue ServiceAccount tokens right now."""

    def __init__(self, registry: Any, issues_tokens: Callable[[], bool]) -> None:
        self.registry = registry
        self.issues_tokens = issues_tokens

    def admit(self, pod: Obj) -> None:
        """Default, check and mount for one pod being created (mutates ``pod``)."""
        meta = pod.get("metadata") or {}
        spec = pod.setdefault("spec", {})
        named = spec.get("serviceAccountName") or spec.get("serviceAccount")
        if MIRROR_ANNOTATION in (meta.get("annotations") or {}):
            if named:
                raise _forbidden(pod, "a mirror pod may not reference service accounts")
            return
        name = named or DEFAULT_SERVICE_ACCOUNT
        spec["serviceAccountName"] = spec["serviceAccount"] = name  # v1 keeps both
        namespace = meta.get("namespace") or "default"
        entry = self.registry.find(SERVICEACCOUNTS, namespace, name)
        if entry is None:
            if name != DEFAULT_SERVICE_ACCOUNT:
                raise _forbidden(
                    pod,
                    f"error looking up service account {namespace}/{name}: "
                    f'serviceaccount "{name}" not found',
                )
            return
        if self.issues_tokens() and should_automount(entry.obj, pod):
            mount_token(pod)

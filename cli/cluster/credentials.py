"""Credentials of a secure ``tug up`` cluster: the PKI in ``D/pki`` and one kubeconfig per
component in ``D/kubeconfigs/COMPONENT.kubeconfig``, each with its own client certificate.

Who is who (CN = user, O = groups, as the API server's x509 authenticator reads them):

- a node agent ``kubelet-NAME``: ``system:node:NAME`` in ``system:nodes`` (Kubernetes' node
  identity, which the Node authorizer and NodeRestriction admission limit to its own objects);
- the hollow-node process (``--runtime fake``, N nodes in one process) cannot be one node, so it
  runs as ``tug:hollow-nodes`` in ``system:masters``;
- controller-manager, scheduler, proxy and DNS: ``system:kube-controller-manager``,
  ``system:kube-scheduler``, ``system:kube-proxy``, ``system:tug-dns``, in no group: the API
  server's bootstrap ClusterRoles bound to those users say what each may do
  (apiserver/auth/bootstrap.py);
- ``D/kubeconfig`` (the user's): ``admin`` in ``system:masters``.

Private keys and kubeconfigs are mode 0600 in a 0700 directory and never printed.
"""

from __future__ import annotations

from pathlib import Path

from machinery.kubeconfig import write_kubeconfig
from machinery.pki import ADMIN_GROUP, ADMIN_USER, Pki

MASTERS = "system:masters"
SYSTEM_USERS = {
    "controller-manager": "system:kube-controller-manager",
    "scheduler": "system:kube-scheduler",
    "proxy": "system:kube-proxy",
    "dns": "system:tug-dns",
    "kubelet": "tug:hollow-nodes",
}


def identity(component: str) -> tuple[str, tuple[str, ...]]:
    """(user, groups) a component authenticates as."""
    if component.startswith("kubelet-"):
        return f"system:node:{component.removeprefix('kubelet-')}", ("system:nodes",)
    if component == "kubelet":
        return SYSTEM_USERS[component], (MASTERS,)
    return SYSTEM_USERS[component], ()


def kubeconfig_path(data_dir: Path, component: str) -> Path:
    return data_dir / "kubeconfigs" / f"{component}.kubeconfig"


def write_credentials(data_dir: Path, server: str, components: list[str]) -> None:
    """Make the PKI (idempotent) and write the admin's and each component's kubeconfig."""
    pki = Pki(data_dir / "pki").ensure()
    ca = pki.ca.cert_pem()
    admin = pki.client(ADMIN_USER, (ADMIN_GROUP,), file_name="admin")
    write_kubeconfig(str(data_dir / "kubeconfig"), server, ca_data=ca,
                     cert_data=admin.cert_pem(), key_data=admin.key_pem())  # fmt: skip
    for component in components:
        user, groups = identity(component)
        pair = pki.client(user, groups, file_name=component)
        write_kubeconfig(str(kubeconfig_path(data_dir, component)), server, ca_data=ca,
                         cert_data=pair.cert_pem(), key_data=pair.key_pem())  # fmt: skip
    (data_dir / "kubeconfigs").chmod(0o700)

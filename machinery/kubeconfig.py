"""Read and write kubeconfig files (the format kubectl and the kubernetes clients use).

:func:`load_kubeconfig` resolves one context into a :class:`ClusterConfig`: the server URL,
credentials (bearer token or client certificate) and how to verify the server (CA file or
inline data, or ``insecure-skip-tls-verify``). Relative file paths are relative to the kubeconfig
file, as kubectl reads them. Only the first file of a ``KUBECONFIG`` list is read (no merging).
"""

from __future__ import annotations

import base64
import os
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml


class KubeconfigError(ValueError):
    """The kubeconfig is missing, malformed, or lacks the asked-for context."""


@dataclass
class ClusterConfig:
    """Everything a client needs to reach one cluster as one user."""

    server: str
    token: str | None = None
    ca_file: str | None = None
    ca_data: bytes | None = None
    cert_file: str | None = None
    key_file: str | None = None
    cert_data: bytes | None = None
    key_data: bytes | None = None
    insecure: bool = False
    namespace: str = "default"

    def ssl_context(self) -> ssl.SSLContext | bool:
        """What to pass as httpx ``verify``: ``True`` (system CAs) when nothing is configured,
        else a context with the configured CA and client certificate."""
        has_client_cert = bool(self.cert_file or self.cert_data)
        if not (self.ca_file or self.ca_data or has_client_cert or self.insecure):
            return True
        ctx = ssl.create_default_context()
        if self.insecure:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        elif self.ca_file or self.ca_data:
            ctx = ssl.create_default_context(
                cafile=self.ca_file, cadata=self.ca_data.decode() if self.ca_data else None
            )
        if has_client_cert:
            _load_client_cert(ctx, self.cert_file, self.key_file, self.cert_data, self.key_data)
        return ctx


def _load_client_cert(
    ctx: ssl.SSLContext,
    cert_file: str | None,
    key_file: str | None,
    cert_data: bytes | None,
    key_data: bytes | None,
) -> None:
    """``ssl`` loads certificates only from files: spill inline data to a private temp dir."""
    if cert_file and (key_file or not key_data):
        ctx.load_cert_chain(cert_file, key_file)
        return
    with tempfile.TemporaryDirectory(prefix="tugboat-cert-") as tmp:
        if cert_data is not None:
            cert_file = os.path.join(tmp, "tls.crt")
            Path(cert_file).write_bytes(cert_data)
        if key_data is not None:
            key_file = os.path.join(tmp, "tls.key")
            Path(key_file).write_bytes(key_data)
        assert cert_file is not None
        ctx.load_cert_chain(cert_file, key_file)


def default_path() -> str:
    """``$KUBECONFIG`` (its first entry) or ``~/.kube/config``."""
    env = os.environ.get("KUBECONFIG", "")
    for entry in env.split(os.pathsep):
        if entry:
            return entry
    return os.path.join(os.path.expanduser("~"), ".kube", "config")


def _named(entries: Any, name: str, what: str) -> dict[str, Any]:
    for entry in entries or []:
        if isinstance(entry, dict) and entry.get("name") == name:
            return dict(entry.get(what) or {})
    raise KubeconfigError(f"{what} {name!r} not found in kubeconfig")


def _b64(value: str | None) -> bytes | None:
    return base64.b64decode(value) if value else None


def load_kubeconfig(path: str | None = None, context: str | None = None) -> ClusterConfig:
    """The :class:`ClusterConfig` of ``context`` (default: ``current-context``) in ``path``."""
    path = path or default_path()
    try:
        doc = yaml.safe_load(Path(path).read_text()) or {}
    except OSError as e:
        raise KubeconfigError(f"cannot read kubeconfig {path}: {e}") from e
    except yaml.YAMLError as e:
        raise KubeconfigError(f"kubeconfig {path} is not valid YAML: {e}") from e
    if not isinstance(doc, dict):
        raise KubeconfigError(f"kubeconfig {path} is not a mapping")
    context = context or doc.get("current-context")
    if not context:
        raise KubeconfigError(f"kubeconfig {path} has no current-context")
    ctx = _named(doc.get("contexts"), context, "context")
    cluster = _named(doc.get("clusters"), ctx.get("cluster", ""), "cluster")
    user = _named(doc.get("users"), ctx["user"], "user") if ctx.get("user") else {}
    if not cluster.get("server"):
        raise KubeconfigError(f"cluster {ctx.get('cluster')!r} has no server")

    base = Path(path).resolve().parent

    def file(value: str | None) -> str | None:
        return str(base / os.path.expanduser(value)) if value else None

    token = user.get("token")
    if not token and user.get("tokenFile"):
        token = Path(file(user["tokenFile"]) or "").read_text().strip()
    return ClusterConfig(
        server=str(cluster["server"]).rstrip("/"),
        token=token or None,
        ca_file=file(cluster.get("certificate-authority")),
        ca_data=_b64(cluster.get("certificate-authority-data")),
        cert_file=file(user.get("client-certificate")),
        key_file=file(user.get("client-key")),
        cert_data=_b64(user.get("client-certificate-data")),
        key_data=_b64(user.get("client-key-data")),
        insecure=bool(cluster.get("insecure-skip-tls-verify", False)),
        namespace=ctx.get("namespace") or "default",
    )


def write_kubeconfig(
    path: str,
    server: str,
    *,
    token: str | None = None,
    ca_data: bytes | None = None,
    name: str = "tugboat",
    namespace: str = "default",
) -> None:
    """Write a one-cluster, one-user, one-context kubeconfig (mode 0600, replaced atomically)
    that kubectl and the kubernetes clients accept; its context ``name`` is current."""
    cluster: dict[str, Any] = {"server": server}
    if ca_data:
        cluster["certificate-authority-data"] = base64.b64encode(ca_data).decode()
    user: dict[str, Any] = {"token": token} if token else {}
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": cluster}],
        "users": [{"name": name, "user": user}],
        "contexts": [
            {"name": name, "context": {"cluster": name, "user": name, "namespace": namespace}}
        ],
        "current-context": name,
        "preferences": {},
    }
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    try:
        with os.fdopen(fd, "w") as f:
            yaml.safe_dump(doc, f, sort_keys=False)
        os.chmod(tmp, 0o600)
        os.replace(tmp, target)
    except BaseException:
        os.unlink(tmp)
        raise

"""Read and write kubeconfig files (the format kubectl and the kubernetes clients use).

:func:`load_kubeconfig` resolves one context into a :class:`ClusterConfig`: the server URL,
credentials (bearer token or client certificate) and how to verify the server (CA file or
inline data, or ``insecure-skip-tls-verify``). Relative file paths are relative to the kubeconfig
file, as kubectl reads them. Without an explicit file the search order is (:func:`search_paths`):
every file of ``$KUBECONFIG`` merged as kubectl merges them (the first file to name a cluster,
user or context wins; ``current-context`` comes from the first file that sets one), else
``~/.kube/config``, else ``tug up``'s ``$TUG_DATA_DIR/kubeconfig`` (default
``~/.tugboat/kubeconfig``) when ``~/.kube/config`` does not exist.
:func:`merge_kubeconfig` and :func:`unmerge_kubeconfig` add and remove one named cluster, user
and context in a user's kubeconfig, leaving every other entry as it was.
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
    """The file kubectl writes to: ``$KUBECONFIG`` (its first entry) or ``~/.kube/config``."""
    env = os.environ.get("KUBECONFIG", "")
    for entry in env.split(os.pathsep):
        if entry:
            return entry
    return os.path.join(os.path.expanduser("~"), ".kube", "config")


def tug_up_path() -> str:
    """Where ``tug up`` writes its kubeconfig by default (``$TUG_DATA_DIR`` or ``~/.tugboat``)."""
    data_dir = os.environ.get("TUG_DATA_DIR") or "~/.tugboat"
    return os.path.join(os.path.expanduser(data_dir), "kubeconfig")


def search_paths() -> list[str]:
    """The files read when none is named, in precedence order: the ``$KUBECONFIG`` entries
    (de-duplicated, missing ones kept: :func:`read_merged` skips them), else
    ``~/.kube/config``, else :func:`tug_up_path` when only that one exists."""
    entries = [e for e in os.environ.get("KUBECONFIG", "").split(os.pathsep) if e]
    if entries:
        return list(dict.fromkeys(entries))
    home = default_path()
    if not os.path.exists(home) and os.path.exists(tug_up_path()):
        return [tug_up_path()]
    return [home]


def read_merged(paths: list[str]) -> dict[str, Any]:
    """One kubeconfig document from ``paths``, merged as kubectl merges ``$KUBECONFIG``: for each
    named cluster, user and context the first file that has it wins, ``current-context`` comes
    from the first file that sets it, missing files are skipped (all missing is an error).
    File references are made absolute, relative to the file each entry came from."""
    existing = [p for p in paths if os.path.exists(p)]
    if not existing:
        raise KubeconfigError(f"cannot read kubeconfig {os.pathsep.join(paths)}: no such file")
    merged: dict[str, Any] = {"clusters": [], "users": [], "contexts": []}
    for path in existing:
        doc = _read_doc(Path(path))
        base = Path(path).resolve().parent
        for key in ("clusters", "users", "contexts"):
            for entry in doc.get(key) or []:
                if isinstance(entry, dict) and _entry(merged, key, entry.get("name")) is None:
                    merged[key].append(_absolute(entry, base))
        if not merged.get("current-context") and doc.get("current-context"):
            merged["current-context"] = doc["current-context"]
    return merged


def _named(entries: Any, name: str, what: str) -> dict[str, Any]:
    for entry in entries or []:
        if isinstance(entry, dict) and entry.get("name") == name:
            return dict(entry.get(what) or {})
    raise KubeconfigError(f"{what} {name!r} not found in kubeconfig")


def _b64(value: str | None) -> bytes | None:
    return base64.b64decode(value) if value else None


def load_kubeconfig(path: str | None = None, context: str | None = None) -> ClusterConfig:
    """The :class:`ClusterConfig` of ``context`` (default: ``current-context``) in ``path``,
    or without ``path`` in the merge of :func:`search_paths`."""
    paths = [path] if path else search_paths()
    doc = read_merged(paths)
    where = os.pathsep.join(paths)
    context = context or doc.get("current-context")
    if not context:
        raise KubeconfigError(f"kubeconfig {where} has no current-context")
    ctx = _named(doc.get("contexts"), context, "context")
    cluster = _named(doc.get("clusters"), ctx.get("cluster", ""), "cluster")
    user = _named(doc.get("users"), ctx["user"], "user") if ctx.get("user") else {}
    if not cluster.get("server"):
        raise KubeconfigError(f"cluster {ctx.get('cluster')!r} has no server")

    def file(value: str | None) -> str | None:  # already absolute (read_merged)
        return os.path.expanduser(value) if value else None

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
    cert_data: bytes | None = None,
    key_data: bytes | None = None,
    name: str = "tugboat",
    namespace: str = "default",
) -> None:
    """Write a one-cluster, one-user, one-context kubeconfig (mode 0600, replaced atomically)
    that kubectl and the kubernetes clients accept; its context ``name`` is current. The user
    authenticates with ``token`` or the client certificate ``cert_data``/``key_data`` (PEM)."""
    cluster: dict[str, Any] = {"server": server}
    if ca_data:
        cluster["certificate-authority-data"] = base64.b64encode(ca_data).decode()
    user: dict[str, Any] = {"token": token} if token else {}
    if cert_data and key_data:
        user["client-certificate-data"] = base64.b64encode(cert_data).decode()
        user["client-key-data"] = base64.b64encode(key_data).decode()
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


@dataclass(frozen=True)
class MergeResult:
    """What :func:`merge_kubeconfig` did to the target file."""

    path: str
    server: str  # the merged cluster's server
    changed: bool  # False: the entries were already there, the file was not rewritten
    backup: str | None  # the previous content, when there was a file to change
    current_context: str | None  # the target's current-context after the merge
    set_current: bool  # True when the merge set current-context (there was none)


def _read_doc(path: Path) -> dict[str, Any]:
    """A kubeconfig file as a mapping; an absent or empty file is an empty Config."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    except OSError as e:
        raise KubeconfigError(f"cannot read kubeconfig {path}: {e}") from e
    try:
        doc = yaml.safe_load(text) or {}
    except yaml.YAMLError as e:
        raise KubeconfigError(f"kubeconfig {path} is not valid YAML: {e}") from e
    if not isinstance(doc, dict):
        raise KubeconfigError(f"kubeconfig {path} is not a mapping")
    for key in ("clusters", "users", "contexts"):
        if not isinstance(doc.get(key) or [], list):
            raise KubeconfigError(f"kubeconfig {path}: {key} is not a list")
    return doc


def _is(entry: Any, name: str) -> bool:
    return isinstance(entry, dict) and entry.get("name") == name


def _entry(doc: dict[str, Any], key: str, name: str) -> dict[str, Any] | None:
    return next((e for e in doc.get(key) or [] if _is(e, name)), None)


def _put(items: list[Any], entry: dict[str, Any]) -> list[Any]:
    """``items`` with ``entry`` in place of the item of the same name, else appended."""
    if any(_is(e, entry["name"]) for e in items):
        return [entry if _is(e, entry["name"]) else e for e in items]
    return [*items, entry]


def _write_doc(path: Path, doc: dict[str, Any], mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as f:
            yaml.safe_dump(doc, f, sort_keys=False)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def _save(path: Path, doc: dict[str, Any], backup: Path) -> None:
    """Replace ``path`` atomically, keeping its mode; its old content goes to ``backup``."""
    mode = 0o600
    if path.exists():
        mode = path.stat().st_mode & 0o777
        backup.write_bytes(path.read_bytes())
        os.chmod(backup, 0o600)
    _write_doc(path, doc, mode)


_FILE_FIELDS = ("certificate-authority", "client-certificate", "client-key", "tokenFile")


def _absolute(entry: dict[str, Any], base: Path) -> dict[str, Any]:
    """``entry`` with its file references made absolute (relative ones are relative to the
    file they were read from, and the entry is moving to another file)."""
    out = dict(entry)
    for section in ("cluster", "user"):
        body = out.get(section)
        if isinstance(body, dict):
            out[section] = {
                k: str(base / os.path.expanduser(v))
                if k in _FILE_FIELDS and isinstance(v, str) and v
                else v
                for k, v in body.items()
            }
    return out


def backup_path(path: str) -> str:
    """Where :func:`merge_kubeconfig` and :func:`unmerge_kubeconfig` keep the previous file."""
    return f"{path}.tugboat.bak"


def merge_kubeconfig(source: str, target: str, name: str = "tugboat") -> MergeResult:
    """Copy the cluster, user and context called ``name`` from ``source`` into ``target``
    (created if absent), as ``kubectl config set-cluster/set-credentials/set-context`` would:
    entries of other names are left as they are, entries called ``name`` are replaced, and
    ``current-context`` is set to ``name`` only when ``target`` has none. Idempotent: nothing
    is written when ``target`` already holds the same entries. Before a change the previous
    file is copied to :func:`backup_path`."""
    src = _read_doc(Path(source))
    entries: dict[str, dict[str, Any]] = {}
    for key in ("clusters", "users", "contexts"):
        entry = _entry(src, key, name)
        if entry is None:
            raise KubeconfigError(f"{source} has no {key[:-1]} named {name!r}")
        entries[key] = _absolute(entry, Path(source).resolve().parent)
    path = Path(target)
    doc = _read_doc(path)
    before = yaml.safe_dump(doc, sort_keys=False)
    doc.setdefault("apiVersion", "v1")
    doc.setdefault("kind", "Config")
    for key, entry in entries.items():
        doc[key] = _put(list(doc.get(key) or []), entry)
    set_current = not doc.get("current-context")
    if set_current:
        doc["current-context"] = name
    doc.setdefault("preferences", {})
    changed = yaml.safe_dump(doc, sort_keys=False) != before
    backup = backup_path(target) if changed and path.exists() else None
    if changed:
        _save(path, doc, Path(backup_path(target)))
    server = str((entries["clusters"].get("cluster") or {}).get("server", ""))
    return MergeResult(target, server, changed, backup, doc.get("current-context"), set_current)


def unmerge_kubeconfig(target: str, name: str = "tugboat", server: str | None = None) -> bool:
    """Remove the cluster, user and context called ``name`` from ``target`` (and
    ``current-context`` when it names it), backing the file up first. With ``server``, only
    when the cluster entry still points there (another cluster may have been merged since).
    Returns True when the file changed."""
    path = Path(target)
    doc = _read_doc(path)
    cluster = (_entry(doc, "clusters", name) or {}).get("cluster") or {}
    if server is not None and cluster.get("server") != server:
        return False
    found = False
    for key in ("clusters", "users", "contexts"):
        kept = [e for e in doc.get(key) or [] if not _is(e, name)]
        found = found or len(kept) != len(doc.get(key) or [])
        if key in doc:
            doc[key] = kept
    if doc.get("current-context") == name:
        doc["current-context"] = ""
        found = True
    if found:
        _save(path, doc, Path(backup_path(target)))
    return found

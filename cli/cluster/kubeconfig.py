"""``tug up --merge-kubeconfig`` and its undoing by ``tug down --purge``.

The cluster's own ``D/kubeconfig`` always exists; merging copies its ``tugboat`` cluster, user
and context into the user's kubeconfig (``--merge-kubeconfig PATH``, else ``$KUBECONFIG``'s
first file, else ``~/.kube/config``) the way kind and minikube do, so plain ``kubectl`` and
``tug`` reach the cluster. What was merged, where, is recorded in ``D/merged-kubeconfig.json``
so that ``tug down --purge`` removes exactly that — unless another cluster has been merged
under the same name since.
"""

from __future__ import annotations

from pathlib import Path

from machinery.kubeconfig import (
    KubeconfigError,
    default_path,
    merge_kubeconfig,
    unmerge_kubeconfig,
)

from .common import ClusterError, DataDir
from .supervisor import read_json, write_json

CONTEXT = "tugboat"
RECORD = "merged-kubeconfig.json"


def merge(d: DataDir, target: str | None) -> str:
    """Merge ``D/kubeconfig`` into ``target`` (default: kubectl's file); returns the line that
    tells the user what happened."""
    path = str(Path(target or default_path()).expanduser())
    try:
        result = merge_kubeconfig(str(d.kubeconfig), path, CONTEXT)
    except (KubeconfigError, OSError) as err:
        raise ClusterError(f"cannot merge into {path}: {err}") from None
    write_json(d.root / RECORD, {"path": path, "context": CONTEXT, "server": result.server})
    if not result.changed:
        what = f'context "{CONTEXT}" is already in {path}'
    else:
        what = f'merged context "{CONTEXT}" into {path}'
        if result.backup:
            what += f" (previous file kept as {result.backup})"
    if result.set_current:
        return f"{what}; it is the current context (there was none)\n"
    if result.current_context == CONTEXT:
        return f"{what}; it is the current context\n"
    return (
        f'{what}; the current context stays "{result.current_context}": '
        f"kubectl config use-context {CONTEXT} switches to it\n"
    )


def unmerge(d: DataDir) -> str | None:
    """Undo :func:`merge` (when it happened for this data dir); returns a line to print."""
    record = read_json(d.root / RECORD)
    if not record or not Path(record.get("path", "")).exists():
        return None
    path, context = record["path"], record.get("context", CONTEXT)
    try:
        removed = unmerge_kubeconfig(path, context, server=record.get("server"))
    except (KubeconfigError, OSError) as err:
        raise ClusterError(f"cannot remove context {context!r} from {path}: {err}") from None
    if not removed:
        return f"nothing of this cluster's to remove from {path}\n"
    return f'removed context "{context}" from {path}\n'

"""``tug status``: the components of a local cluster and its nodes.

    tug status [--data-dir D]

Prints one line per component (pid, state ``up``/``restarting``/``waiting``, restarts, since)
from the supervisor's state file, then the Nodes as the API server reports them. Exit code 0
when the cluster runs, 1 when it does not (so scripts can test it).
"""

from __future__ import annotations

import sys
from typing import Any

import httpx

from machinery import errors
from machinery.client import Client
from machinery.kinds import lookup

from .common import DataDir, parser, run_main

NODES = lookup("nodes")


def table(header: list[str], rows: list[list[str]]) -> str:
    """Columns padded to their widest cell plus three spaces, like kubectl."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["   ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
             for r in [header, *rows]]  # fmt: skip
    return "\n".join(lines) + "\n"


def component_rows(state: dict[str, Any]) -> list[list[str]]:
    rows = []
    for name, comp in (state.get("components") or {}).items():
        pid = comp.get("pid")
        rows.append(
            [
                name,
                str(pid) if pid else "-",
                str(comp.get("state", "?")),
                str(comp.get("restarts", 0)),
                str(comp.get("since") or "-"),
            ]
        )
    return rows


def node_rows(nodes: list[dict[str, Any]]) -> list[list[str]]:
    rows = []
    for node in nodes:
        meta, spec, status = (
            node.get("metadata") or {},
            node.get("spec") or {},
            node.get("status") or {},
        )
        ready = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), {})
        state = {"True": "Ready", "False": "NotReady"}.get(ready.get("status"), "Unknown")
        if spec.get("unschedulable"):
            state += ",SchedulingDisabled"
        version = (status.get("nodeInfo") or {}).get("kubeletVersion", "")
        rows.append([meta.get("name", "?"), state, spec.get("podCIDR") or "-", version])
    return rows


def status(argv: list[str]) -> int:
    p = parser("tug status", "Show the components and nodes of a local tugboat cluster.")
    args = p.parse_args(argv)
    d = DataDir.at(args.data_dir)
    supervisor = d.supervisor()
    if supervisor is None:
        print(f"tugboat is not running (data dir {d.root}); start it with tug up")
        return 1
    cluster = d.cluster() or {}
    server = cluster.get("server", "?")
    print(
        f"tugboat: API server {server}, runtime {cluster.get('runtime', '?')}, "
        f"supervisor pid {supervisor.pid}, data dir {d.root}\n"
    )
    header = ["COMPONENT", "PID", "STATE", "RESTARTS", "SINCE"]
    print(table(header, component_rows(d.state() or {})))
    try:
        with Client.from_kubeconfig(str(d.kubeconfig), timeout=5) as client:
            nodes = client.list(NODES).get("items") or []
    except (errors.ApiError, httpx.HTTPError) as err:
        print(f"nodes: the API server at {server} does not answer ({err})")
        return 0
    if nodes:
        print(table(["NODE", "STATUS", "POD CIDR", "VERSION"], node_rows(nodes)), end="")
    else:
        print("no nodes registered yet")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_main(status, argv)


if __name__ == "__main__":
    sys.exit(main())

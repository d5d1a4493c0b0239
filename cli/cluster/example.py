"""The example app: apply ``manifests/examples/web.yaml`` and wait until its pods answer HTTP.

    python -m cli.cluster.example [--data-dir D] [--timeout S] [--no-http]

What ``hack/up.sh`` runs after ``tug up`` (and what the cluster tests reuse). Applying is
create-or-merge-patch per object, so it can be repeated. "Answers" means: the Deployment's
replicas are Running pods with an IP, and an HTTP GET of ``http://<pod IP>:8080/`` from this
host returns a page naming the expected version (``v1``).
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from machinery import errors
from machinery.client import Client
from machinery.kinds import builtin, lookup

from .common import REPO, ClusterError, DataDir, parser, run_main

EXAMPLES = REPO / "manifests" / "examples"
WEB_MANIFEST = EXAMPLES / "web.yaml"
PODS = lookup("pods")
WEB_PORT = 8080


def load_manifest(path: Path) -> list[dict[str, Any]]:
    """The objects of a multi-document YAML file (empty documents skipped)."""
    try:
        return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    except (OSError, yaml.YAMLError) as err:
        raise ClusterError(f"{path}: {err}")


def apply_objects(
    client: Client, objects: list[dict[str, Any]], namespace: str = "default"
) -> None:
    """Create each object, or merge-patch it into the existing one of the same name."""
    for obj in objects:
        rt = builtin(obj["apiVersion"], obj["kind"])
        ns = (obj.get("metadata") or {}).get("namespace", namespace) if rt.namespaced else None
        try:
            client.create(rt, obj, ns)
        except errors.AlreadyExists:
            client.patch(rt, obj["metadata"]["name"], obj, ns, patch_type="merge")


@dataclass(frozen=True)
class Answer:
    pod: str
    ip: str
    body: str


def running_pods(client: Client, selector: str, namespace: str = "default") -> list[dict[str, Any]]:
    """Pods matching ``selector`` that are Running with an IP and not being deleted."""
    items = client.list(PODS, namespace, label_selector=selector).get("items") or []
    return [
        p
        for p in items
        if (p.get("status") or {}).get("phase") == "Running"
        and (p.get("status") or {}).get("podIP")
        and not (p.get("metadata") or {}).get("deletionTimestamp")
    ]


def http_answers(pods: list[dict[str, Any]], port: int, expect: str) -> list[Answer] | None:
    """GET ``/`` of every pod from this host; None unless each page contains ``expect``."""
    answers = []
    with httpx.Client(timeout=2, trust_env=False) as http:
        for pod in pods:
            ip = pod["status"]["podIP"]
            try:
                body = http.get(f"http://{ip}:{port}/").text
            except httpx.HTTPError:
                return None
            if expect not in body:
                return None
            answers.append(Answer(pod["metadata"]["name"], ip, body))
    return answers


def wait_for_app(
    client: Client,
    *,
    replicas: int = 3,
    selector: str = "app=web",
    timeout: float = 180.0,
    http: bool = True,
    expect: str = "v1",
) -> list[dict[str, Any]]:
    """Poll until ``replicas`` matching pods run (and, with ``http``, all answer); returns them.
    Raises ClusterError at the deadline, naming what was last seen."""
    deadline = time.monotonic() + timeout
    seen: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        try:
            seen = running_pods(client, selector)
        except (errors.ApiError, httpx.HTTPError):
            seen = []
        if len(seen) == replicas and (not http or http_answers(seen, WEB_PORT, expect)):
            return seen
        time.sleep(0.5)
    raise ClusterError(
        f"timed out after {timeout:g}s: {len(seen)}/{replicas} pods {selector} running"
        + (" and answering" if http else "")
    )


def example(argv: list[str]) -> int:
    p = parser("python -m cli.cluster.example", "Apply the example app and wait for it.")
    p.add_argument("--timeout", type=float, default=180.0)
    p.add_argument("--no-http", action="store_true", help="do not GET the pods from this host")
    args = p.parse_args(argv)
    d = DataDir.at(args.data_dir)
    if d.supervisor() is None:
        raise ClusterError(f"no running cluster in {d.root}; run tug up first")
    server = (d.cluster() or {}).get("server")
    if not server:
        raise ClusterError(f"{d.spec_file} names no API server")
    with Client.from_kubeconfig(str(d.kubeconfig)) as client:
        apply_objects(client, load_manifest(WEB_MANIFEST))
        goal = "run" if args.no_http else "answer"
        print(f"applied {WEB_MANIFEST}; waiting for 3 web pods to {goal}", flush=True)
        pods = wait_for_app(client, timeout=args.timeout, http=not args.no_http)
    for pod in pods:
        print(f"  {pod['metadata']['name']:30} http://{pod['status']['podIP']}:{WEB_PORT}/")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_main(example, argv)


if __name__ == "__main__":
    sys.exit(main())

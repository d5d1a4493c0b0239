"""Small CRI maintenance commands: ``python -m kubelet.cri --endpoint URL COMMAND``.

Commands: ``version``; ``pods`` (one line per sandbox: id, state, namespace/name, IP);
``remove-all`` (stop and remove every sandbox, hence its containers, then rmdir the pod cgroup
directories, taken from containerd's verbose sandbox info: what ``hack/start-containerd.sh
--stop`` runs before stopping the daemon).
"""

from __future__ import annotations

import argparse
import json
import sys

from . import api_pb2 as pb
from .cgroups import remove_cgroup
from .client import DEFAULT_ENDPOINT, RuntimeClient
from .errors import CriError, CriNotFound


def _cgroup_parent(info: dict[str, str]) -> str:
    try:
        config = json.loads(info.get("info", "{}")).get("config", {})
    except ValueError:
        return ""
    return str(config.get("linux", {}).get("cgroup_parent", ""))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kubelet.cri", description=__doc__)
    parser.add_argument("--endpoint", default=DEFAULT_ENDPOINT)
    parser.add_argument("--timeout", type=float, default=30.0)
    parser.add_argument("command", choices=["version", "pods", "remove-all"])
    args = parser.parse_args(argv)
    with RuntimeClient(args.endpoint, timeout=args.timeout) as client:
        try:
            if args.command == "version":
                v = client.version()
                print(f"{v.runtime_name} {v.runtime_version} (CRI {v.runtime_api_version})")
            elif args.command == "pods":
                for s in client.list_pod_sandbox():
                    ip = client.pod_sandbox_status(s.id).network.ip
                    state = pb.PodSandboxState.Name(s.state)
                    print(f"{s.id[:13]} {state} {s.metadata.namespace}/{s.metadata.name} {ip}")
            else:
                for s in client.list_pod_sandbox():
                    try:
                        parent = _cgroup_parent(client.pod_sandbox_info(s.id))
                        client.stop_pod_sandbox(s.id)
                        client.remove_pod_sandbox(s.id)
                    except CriNotFound:
                        continue
                    if parent:
                        remove_cgroup(parent)
        except CriError as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The ``tug`` command: component launchers (``tug apiserver ...``) and kubectl-style verbs.

The component and cluster names dispatch to their module's ``main(argv)``; everything else is a
kubectl-style verb handled by :mod:`cli.app`.
"""

from __future__ import annotations

import importlib
import sys

# component sub-command → module whose ``main(argv)`` runs it
COMPONENTS = {
    "apiserver": "apiserver.main",
    "controller-manager": "controllers.manager",
    "scheduler": "scheduler.__main__",
    "kubelet": "kubelet.main",
    "proxy": "kubelet.proxy.main",
    "dns": "kubelet.dns",
    "up": "cli.cluster.up",
    "down": "cli.cluster.down",
    "status": "cli.cluster.status",
}

USAGE = """usage: tug COMMAND [ARGS...]

components:
  apiserver            run the API server
  controller-manager   run the controllers
  scheduler            run the scheduler
  kubelet              run a node agent
  proxy                run the service proxy (iptables rules for Services)
  dns                  run the cluster DNS server

cluster:
  up                   start a local cluster (API server, controllers, scheduler, nodes)
  down                 stop it (--purge also deletes its data)
  status               show its components and nodes

kubectl-style verbs (tug COMMAND --help for each):
  get describe apply create delete edit patch label annotate scale set run expose
  rollout wait cordon uncordon drain logs exec top autoscale api-resources explain
  version cluster-info config
"""


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0
    cmd, rest = args[0], args[1:]
    module_name = COMPONENTS.get(cmd)
    if module_name is None:
        from cli.app import run

        return run(args)
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        print(f"error: {cmd} is not available in this build: {exc}", file=sys.stderr)
        return 1
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    raise SystemExit(main())

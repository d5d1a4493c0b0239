"""The cluster verbs: ``tug up``, ``tug down``, ``tug status`` (a local cluster on this machine).

Layout of a data dir ``D`` (default ``~/.tugboat``)::

    D/kubeconfig            how clients reach the API server
    D/state.db              the API server's SQLite store (kept by ``tug down``)
    D/cluster.json          what ``tug up`` started: server URL, runtime, nodes, components
    D/supervisor.json       the supervisor's live state: its pid, each component's pid/state
    D/logs/<component>.log  output of each component (and ``supervisor.log``)
    D/containerd/<node>/    one containerd instance per node (``--runtime containerd``)
    D/images/               the shipped images, built offline
    D/nodes/<node>/pods/    pod logs of that node

One detached supervisor process (:mod:`cli.cluster.supervisor`) owns every component process.
"""

"""One module per family of verbs; each has ``register(subparsers)``."""

from __future__ import annotations

from cli.verbs import (
    apply,
    completion,
    create,
    delete,
    describe,
    get,
    info,
    modify,
    nodes,
    pods,
    rollout,
)

MODULES = [get, describe, apply, create, delete, modify, rollout, nodes, info, pods, completion]

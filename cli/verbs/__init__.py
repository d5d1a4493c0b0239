"""One module per family of verbs; each has ``register(subparsers)``."""

from __future__ import annotations

from cli.verbs import (
    apply,
    completion,
    compose,
    create,
    delete,
    describe,
    get,
    image,
    info,
    modify,
    nodes,
    pods,
    portforward,
    registry,
    rollout,
)

MODULES = [get, describe, apply, create, delete, modify, rollout, nodes, info, pods, completion]
MODULES += [image, registry, compose]
MODULES += [portforward]

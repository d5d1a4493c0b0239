"""Positional ``TYPE[,TYPE...] [NAME...]`` and ``TYPE/NAME...`` arguments → what to act on."""

from __future__ import annotations

from dataclasses import dataclass, field

from cli.errors import CliError
from cli.resources import Resources
from machinery.kinds import ResourceType


@dataclass
class Target:
    """One resource type and the names asked for (empty: every object)."""

    rt: ResourceType
    names: list[str] = field(default_factory=list)


def parse_targets(resources: Resources, args: list[str]) -> tuple[list[Target], bool]:
    """The targets in ``args``, and whether output names need a ``kind/`` prefix (several
    types, or ``TYPE/NAME`` syntax), as kubectl decides it."""
    if not args:
        raise CliError(
            'you must specify the type of resource to get. Use "tug api-resources" '
            "for a complete list of supported resources"
        )
    if any("/" in a for a in args):
        targets: list[Target] = []
        for a in args:
            kind, sep, name = a.partition("/")
            if not sep or not name or not kind:
                raise CliError(
                    f"there is no need to specify a resource type as a separate "
                    f"argument when passing arguments in resource/name form (e.g. "
                    f"'tug get resource/<resource_name>' instead of 'tug get "
                    f"resource resource/<resource_name>'), got {a!r}"
                )
            rt = resources.resolve(kind)
            for t in targets:
                if t.rt == rt:
                    t.names.append(name)
                    break
            else:
                targets.append(Target(rt, [name]))
        return targets, True
    kinds = [k for k in args[0].split(",") if k]
    names = args[1:]
    types: list[ResourceType] = []
    for k in kinds:
        found = resources.category(k) if k == "all" else [resources.resolve(k)]
        types += [rt for rt in found if rt not in types]
    multi = len(kinds) > 1 or kinds == ["all"]
    return [Target(rt, list(names)) for rt in types], multi

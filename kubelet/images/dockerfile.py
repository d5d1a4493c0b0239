"""Parse a Dockerfile into instructions (pure: no I/O).

Supported: ``FROM`` (an image or ``scratch``; one stage), ``RUN``, ``COPY``/``ADD`` (local
sources; ``--chown``), ``ENV``, ``WORKDIR``, ``EXPOSE``, ``USER``, ``LABEL``, ``ENTRYPOINT`` and
``CMD`` (exec form = JSON array, else shell form), ``ARG`` (also before ``FROM``). Line
continuations (``\\``), comments and blank lines follow Docker. Variables (``$X``, ``${X}``,
``${X:-default}``, ``${X:+alt}``) are expanded the way Docker does: in every instruction except
``RUN``/``CMD``/``ENTRYPOINT``, whose shell sees them at run time.

Anything else is a :class:`DockerfileError` naming the line: an unknown instruction, one tug
does not support (``HEALTHCHECK``, ``ONBUILD``, ...), a second ``FROM``, a missing argument.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field

SUPPORTED = frozenset(
    "FROM RUN COPY ADD ENV WORKDIR EXPOSE USER LABEL ENTRYPOINT CMD ARG".split()  # noqa: SIM905
)
NOT_SUPPORTED = frozenset(
    "HEALTHCHECK ONBUILD SHELL STOPSIGNAL VOLUME MAINTAINER".split()  # noqa: SIM905
)
_RAW = frozenset({"RUN", "CMD", "ENTRYPOINT"})  # variables left to the shell
_VAR = re.compile(r"\\\$|\$(?:\{(\w+)(?::([-+])([^}]*))?\}|(\w+))")


class DockerfileError(ValueError):
    """A Dockerfile tug cannot build; ``str()`` is one line: ``Dockerfile:LINE: message``."""

    def __init__(self, line: int, message: str, source: str = "Dockerfile") -> None:
        super().__init__(f"{source}:{line}: {message}")
        self.line = line


@dataclass(frozen=True)
class Instruction:
    """One instruction. ``args`` are the expanded words; ``exec_form`` is true for a JSON
    array (``RUN``/``CMD``/``ENTRYPOINT``), in which case ``args`` is that array, otherwise
    ``args`` is the single shell command. ``flags`` holds ``--name=value`` options."""

    line: int
    cmd: str
    args: tuple[str, ...]
    exec_form: bool = False
    flags: tuple[tuple[str, str], ...] = ()
    text: str = ""  # the instruction as written (continuations joined)

    def flag(self, name: str) -> str | None:
        return dict(self.flags).get(name)


@dataclass
class Dockerfile:
    """A parsed single-stage Dockerfile: the base image and the steps after ``FROM``.
    ``args`` are the ``ARG`` defaults declared before ``FROM`` (with build args applied)."""

    base: str
    steps: list[Instruction]
    args: dict[str, str] = field(default_factory=dict)


def expand(text: str, env: Mapping[str, str]) -> str:
    """Docker's variable substitution; ``\\$`` is a literal ``$``; unset expands to ``""``."""

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "\\$":
            return "$"
        name = m.group(1) or m.group(4)
        value = env.get(name)
        if m.group(2) == "-":
            return value or m.group(3) or ""
        if m.group(2) == "+":
            return m.group(3) if value else ""
        return value or ""

    return _VAR.sub(sub, text)


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """(first line number, joined text) per instruction; comments and blanks dropped."""
    out: list[tuple[int, str]] = []
    buf: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if not buf and (not stripped or stripped.startswith("#")):
            continue
        if buf and stripped.startswith("#"):
            continue  # comment lines inside a continuation are dropped, as Docker does
        if not buf:
            start = number
        if stripped.endswith("\\"):
            buf.append(stripped[:-1])
            continue
        buf.append(stripped)
        out.append((start, " ".join(b for b in buf if b)))
        buf = []
    if buf:
        out.append((start, " ".join(buf)))
    return out


def _flags(rest: str, line: int) -> tuple[tuple[tuple[str, str], ...], str]:
    flags: list[tuple[str, str]] = []
    while rest.startswith("--"):
        word, _, rest = rest.partition(" ")
        name, eq, value = word[2:].partition("=")
        if not eq:
            raise DockerfileError(line, f"flag --{name} needs a value (--{name}=VALUE)")
        flags.append((name, value))
        rest = rest.lstrip()
    return tuple(flags), rest


def _exec_or_shell(rest: str) -> tuple[tuple[str, ...], bool]:
    if rest.startswith("["):
        try:
            value = json.loads(rest)
        except json.JSONDecodeError:
            value = None
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return tuple(value), True
    return (rest,), False


def _pairs(rest: str, line: int, cmd: str) -> tuple[str, ...]:
    """``ENV``/``LABEL``/``ARG`` words as ``key=value`` (legacy ``ENV key value`` too)."""
    try:
        words = shlex.split(rest, posix=True)
    except ValueError as e:
        raise DockerfileError(line, f"{cmd}: {e}") from None
    if cmd == "ENV" and words and "=" not in words[0]:
        key, _, value = rest.partition(" ")
        if not value.strip():
            raise DockerfileError(line, f"ENV {key} needs a value (ENV KEY=VALUE)")
        return (f"{key}={value.strip()}",)
    for w in words:
        if cmd != "ARG" and "=" not in w:
            raise DockerfileError(line, f"{cmd}: {w!r} is not KEY=VALUE")
    return tuple(words)


def parse(
    text: str, build_args: Mapping[str, str] | None = None, source: str = "Dockerfile"
) -> Dockerfile:
    """Parse ``text``; ``build_args`` (``--build-arg``) override ``ARG`` defaults."""
    build_args = dict(build_args or {})
    env: dict[str, str] = {}  # variables visible to expansion (ARG + ENV) at this point
    pre_from: dict[str, str] = {}
    base: str | None = None
    steps: list[Instruction] = []
    for line, logical in _logical_lines(text):
        word, _, rest = logical.partition(" ")
        cmd, rest = word.upper(), rest.strip()
        if cmd in NOT_SUPPORTED:
            raise DockerfileError(line, f"{cmd} is not supported by tug image build", source)
        if cmd not in SUPPORTED:
            raise DockerfileError(line, f"unknown instruction: {word}", source)
        if not rest:
            raise DockerfileError(line, f"{cmd} requires at least one argument", source)
        try:
            flags, rest = _flags(rest, line)
        except DockerfileError as e:
            raise DockerfileError(line, str(e).split(": ", 1)[1], source) from None
        if cmd in _RAW:
            args, exec_form = _exec_or_shell(rest)
        else:
            expanded = expand(rest, {**pre_from, **env} if cmd == "FROM" else env)
            if cmd in ("ENV", "LABEL", "ARG"):
                args, exec_form = _pairs(expanded if cmd != "ENV" else rest, line, cmd), False
                if cmd == "ENV":
                    args = tuple(_expand_pair(a, env) for a in args)
            elif cmd in ("COPY", "ADD"):
                args, exec_form = _exec_or_shell(expanded)
                if not exec_form:
                    args = tuple(expanded.split())
                if len(args) < 2:
                    raise DockerfileError(
                        line, f"{cmd} requires a source and a destination", source
                    )
            else:
                args, exec_form = tuple(expanded.split()), False
        if cmd == "FROM":
            if base is not None:
                raise DockerfileError(
                    line, "multi-stage builds (a second FROM) are not supported", source
                )
            if len(args) not in (1, 3) or (len(args) == 3 and args[1].lower() != "as"):
                raise DockerfileError(
                    line, "FROM takes an image name (FROM IMAGE [AS NAME])", source
                )
            base = args[0]
            env = {}
            continue
        if base is None and cmd != "ARG":
            raise DockerfileError(
                line, f"{cmd} before FROM (the first instruction must be FROM or ARG)", source
            )
        if cmd == "ARG":
            for a in args:
                key, eq, default = a.partition("=")
                value = build_args.get(key, default if eq else "")
                if base is None:
                    pre_from[key] = value
                else:
                    env.setdefault(key, value)
            if base is None:
                continue
            args = tuple(f"{a.partition('=')[0]}={env[a.partition('=')[0]]}" for a in args)
        if cmd == "ENV":
            env.update(a.split("=", 1) for a in args)  # type: ignore[arg-type]
        if cmd in ("WORKDIR", "USER") and len(args) != 1:
            raise DockerfileError(line, f"{cmd} takes exactly one argument", source)
        steps.append(Instruction(line, cmd, args, exec_form, flags, logical))
    if base is None:
        raise DockerfileError(1, "no FROM instruction", source)
    return Dockerfile(base, steps, pre_from)


def _expand_pair(pair: str, env: Mapping[str, str]) -> str:
    key, _, value = pair.partition("=")
    return f"{key}={expand(value, env)}"

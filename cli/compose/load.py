"""Read a compose file the way docker-compose does before converting it.

- ``${VAR}``, ``${VAR:-default}``, ``${VAR-default}``, ``$VAR`` and ``$$`` are interpolated
  from the process environment, then a ``.env`` file beside the compose file.
- ``env_file`` entries are read (relative to the compose file) and merged under
  ``environment`` (which wins), so the converter never touches files.
- The project name is ``--project-name``, else the file's ``name:``, else its directory's name.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .convert import ComposeError, dns_name, services_of

_VAR = re.compile(r"\$(?:(\$)|\{(\w+)(?:(:?[-?])([^}]*))?\}|(\w+))")


@dataclass
class ComposeFile:
    path: Path
    project: str
    doc: dict[str, Any]

    @property
    def base_dir(self) -> Path:
        return self.path.parent


def read_env_file(path: Path) -> dict[str, str]:
    """``KEY=VALUE`` lines; ``#`` comments, blank lines and ``export`` prefixes allowed;
    surrounding quotes removed."""
    out: dict[str, str] = {}
    try:
        lines = path.read_text().splitlines()
    except OSError as e:
        raise ComposeError(f"env file {path}: {e.strerror}") from None
    for line in lines:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, eq, value = line.removeprefix("export ").partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        out[key.strip()] = value if eq else os.environ.get(key.strip(), "")
    return out


def interpolate(value: Any, env: Mapping[str, str], where: str = "") -> Any:
    if isinstance(value, str):

        def sub(m: re.Match[str]) -> str:
            if m.group(1):
                return "$"
            name = m.group(2) or m.group(5)
            op, arg = m.group(3), m.group(4) or ""
            current = env.get(name)
            if op in (":-", "-"):
                return current if current or (op == "-" and current is not None) else arg
            if op in (":?", "?") and not current:
                raise ComposeError(f"{where}: required variable {name} is missing: {arg}")
            return current or ""

        return _VAR.sub(sub, value)
    if isinstance(value, list):
        return [interpolate(v, env, where) for v in value]
    if isinstance(value, dict):
        return {
            k: interpolate(v, env, f"{where}.{k}" if where else str(k)) for k, v in value.items()
        }
    return value


def load(path: str | Path, project: str | None = None) -> ComposeFile:
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as e:
        raise ComposeError(f"{path}: {e.strerror}") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ComposeError(f"{path}:{at} invalid YAML") from None
    if not isinstance(raw, dict):
        raise ComposeError(f"{path}: not a compose file (expected a mapping)")
    dotenv = path.parent / ".env"
    env = {**(read_env_file(dotenv) if dotenv.exists() else {}), **os.environ}
    doc = interpolate(raw, env)
    for svc in services_of(doc).values():
        if not isinstance(svc, dict) or "env_file" not in svc:
            continue
        files = svc.pop("env_file")
        merged: dict[str, str] = {}
        for f in [files] if isinstance(files, str) else files:
            f = f["path"] if isinstance(f, dict) else f
            merged.update(read_env_file(path.parent / f))
        own = svc.get("environment") or {}
        if isinstance(own, list):
            own = dict((k, v if eq else None) for k, eq, v in (str(i).partition("=") for i in own))
        svc["environment"] = {**merged, **own}
    name = project or doc.get("name") or path.resolve().parent.name
    return ComposeFile(path, dns_name(str(name)), doc)

"""Read a compose file the way docker-compose does before converting it.

- ``${VAR}``, ``${VAR:-default}``, ``${VAR-default}``, ``$VAR`` and ``$$`` are interpolated
  from the process environment, then a ``.env`` file beside the compose file.
- ``env_file`` entries are read (relative to the compose file) and merged under
  ``environment`` (which wins), so the converter never touches files; a missing file is an
  error unless its entry says ``required: false``.
- An ``environment`` entry without a value (``- KEY`` or ``KEY:``) takes KEY's value from the
  environment ``tug compose`` runs in (then ``.env``); when KEY is unset there it stays
  ``None``, which the converter leaves out, as compose does.
- The project name is ``--project-name``, else the file's ``name:``, else its directory's name.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from . import keys
from .convert import ComposeError, dns_name, services_of

_VAR = re.compile(r"\$(?:(\$)|\{(\w+)(?:(:?[-?])([^}]*))?\}|(\w+))")


@dataclass
class ComposeFile:
    path: Path
    project: str
    doc: dict[str, Any]
    warnings: list[str] = field(default_factory=list)

    @property
    def base_dir(self) -> Path:
        return self.path.parent


def read_env_file(path: Path) -> dict[str, str]:
    """``KEY=VALUE`` lines; ``#`` comments, blank lines and ``export`` prefixes allowed;
    surrounding quotes removed; a bare ``KEY`` takes the process's value (left out if unset)."""
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
        if eq:
            out[key.strip()] = value
        elif key.strip() in os.environ:  # a bare KEY: its value where tug compose runs
            out[key.strip()] = os.environ[key.strip()]
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
    warnings: list[str] = []
    for name, svc in services_of(doc).items():
        if not isinstance(svc, dict):
            continue
        merged = _env_files(svc.pop("env_file", []), path.parent, f"services.{name}", warnings)
        own = svc.get("environment") or {}
        if isinstance(own, list):
            own = dict((k, v if eq else None) for k, eq, v in (str(i).partition("=") for i in own))
        if isinstance(own, dict):
            own = {k: env.get(str(k)) if v is None else v for k, v in own.items()}
            svc["environment"] = {**merged, **own}
    name = project or doc.get("name") or path.resolve().parent.name
    return ComposeFile(path, dns_name(str(name)), doc, warnings)


def _env_files(files: Any, base: Path, where: str, warnings: list[str]) -> dict[str, str]:
    merged: dict[str, str] = {}
    for i, entry in enumerate([files] if isinstance(files, str) else files or []):
        spec = entry if isinstance(entry, dict) else {"path": entry}
        at = f"{where}.env_file[{i}]"
        for key in spec:
            if key in keys.ENV_FILE_UNSUPPORTED:
                warnings.append(f"{at}.{key}: not supported by tug compose, ignored")
            elif key not in keys.ENV_FILE:
                raise ComposeError(f"unknown compose key {at}.{key}")
        if "path" not in spec:
            raise ComposeError(f"{at}: path is required")
        file = base / str(spec["path"])
        if spec.get("required", True) in (False, "false") and not file.exists():
            continue  # compose: an optional env file may be missing
        merged.update(read_env_file(file))
    return merged

"""Global flags and the session they describe: kubeconfig, context, server, namespace.

Like kubectl, global flags may appear before or after the verb: :func:`split_globals` pulls
them out of ``argv`` wherever they are (up to a ``--``), so each verb's parser sees only its
own flags. :class:`Session` turns them into a :class:`~machinery.client.Client` lazily, so verbs
that need no server (``config view``, ``version --client``) never open a connection.
"""

from __future__ import annotations

import math
import os
import sys
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, TextIO

import yaml

from cli.errors import CliError
from machinery.client import Client
from machinery.kubeconfig import (
    ClusterConfig,
    KubeconfigError,
    default_path,
    load_kubeconfig,
    read_merged,
    search_paths,
)


@dataclass
class Globals:
    """The flags every verb accepts."""

    kubeconfig: str | None = None
    context: str | None = None
    server: str | None = None
    namespace: str | None = None
    all_namespaces: bool = False
    token: str | None = None
    insecure: bool = False
    request_timeout: float = 30.0
    watch_timeout: int | None = None  # given --request-timeout: a watch's timeoutSeconds


# flag spelling → (Globals field, takes a value)
_FLAGS: dict[str, tuple[str, bool]] = {
    "--kubeconfig": ("kubeconfig", True),
    "--context": ("context", True),
    "-s": ("server", True),
    "--server": ("server", True),
    "-n": ("namespace", True),
    "--namespace": ("namespace", True),
    "-A": ("all_namespaces", False),
    "--all-namespaces": ("all_namespaces", False),
    "--token": ("token", True),
    "--insecure-skip-tls-verify": ("insecure", False),
    "--request-timeout": ("request_timeout", True),
}


def _timeout(value: str) -> float:
    """kubectl durations: ``0`` (no timeout), ``30``, ``30s``, ``1m``, ``2h``."""
    units = {"s": 1, "m": 60, "h": 3600}
    try:
        if value and value[-1] in units:
            return float(value[:-1]) * units[value[-1]]
        return float(value)
    except ValueError:
        raise CliError(f'invalid argument "{value}" for "--request-timeout" flag') from None


def _bool(flag: str, value: str) -> bool:
    if value.lower() in ("true", "1", "t"):
        return True
    if value.lower() in ("false", "0", "f"):
        return False
    raise CliError(f'invalid argument "{value}" for "{flag}" flag: strconv.ParseBool')


def split_globals(argv: list[str]) -> tuple[Globals, list[str]]:
    """Remove the global flags from ``argv`` (any position before ``--``); return them and
    the rest. Accepts ``--flag value``, ``--flag=value``, ``-nvalue`` and ``-n=value``."""
    g = Globals()
    rest: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            rest.extend(argv[i:])
            break
        name, eq, inline = arg.partition("=")
        if name not in _FLAGS and len(arg) > 2 and arg[:2] in ("-n", "-s") and arg[1] != "-":
            name, eq, inline = arg[:2], "=", arg[2:].removeprefix("=")
        spec = _FLAGS.get(name)
        if spec is None:
            rest.append(arg)
            i += 1
            continue
        attr, takes_value = spec
        if not takes_value:
            setattr(g, attr, _bool(name, inline) if eq else True)
            i += 1
            continue
        if eq:
            value = inline
            i += 1
        elif i + 1 < len(argv):
            value = argv[i + 1]
            i += 2
        else:
            raise CliError(f"flag needs an argument: {name}")
        if attr == "request_timeout":  # client-go sends it as a watch's timeoutSeconds too
            g.request_timeout = _timeout(value)
            g.watch_timeout = math.ceil(g.request_timeout) or None
        else:
            setattr(g, attr, value)
    return g, rest


@dataclass
class Session:
    """What one ``tug`` invocation talks to, resolved lazily from :class:`Globals`."""

    flags: Globals = field(default_factory=Globals)
    out: TextIO = field(default_factory=lambda: sys.stdout)
    err: TextIO = field(default_factory=lambda: sys.stderr)

    @property
    def kubeconfig_paths(self) -> list[str]:
        """``--kubeconfig``, else the files kubectl would read (see :func:`search_paths`)."""
        return [self.flags.kubeconfig] if self.flags.kubeconfig else search_paths()

    @property
    def kubeconfig_path(self) -> str:
        """The one file ``config use-context`` writes, as kubectl picks it: ``--kubeconfig``,
        else the first of :attr:`kubeconfig_paths` that exists."""
        if self.flags.kubeconfig:
            return self.flags.kubeconfig
        return next((p for p in self.kubeconfig_paths if Path(p).exists()), default_path())

    def kubeconfig_doc(self) -> dict[str, Any]:
        """The kubeconfig as kubectl sees it: one file, or the merge of ``$KUBECONFIG``'s."""
        paths = self.kubeconfig_paths
        if len(paths) == 1:
            return read_raw(paths[0])
        try:
            return read_merged(paths)
        except KubeconfigError as e:
            raise CliError(str(e)) from None

    @cached_property
    def cluster(self) -> ClusterConfig:
        """The context's cluster, with ``--server``/``--token``/``--insecure...`` laid over."""
        try:
            cfg = load_kubeconfig(self.flags.kubeconfig, self.flags.context)
        except KubeconfigError as e:
            absent = not any(Path(p).exists() for p in self.kubeconfig_paths)
            if self.flags.server and (absent or not self.flags.context):
                cfg = ClusterConfig(server=self.flags.server)
            elif absent:
                raise CliError(
                    "no configuration has been provided: pass --kubeconfig or --server, or set "
                    f"KUBECONFIG ({os.pathsep.join(self.kubeconfig_paths)} does not exist)"
                ) from None
            else:
                raise CliError(str(e)) from None
        if self.flags.server:
            cfg.server = self.flags.server.rstrip("/")
        if self.flags.token:
            cfg.token = self.flags.token
        if self.flags.insecure:
            cfg.insecure = True
        return cfg

    @property
    def server(self) -> str:
        return self.cluster.server

    @cached_property
    def client(self) -> Client:
        cfg = self.cluster
        return Client(
            cfg.server,
            token=cfg.token,
            verify=cfg.ssl_context(),
            namespace=cfg.namespace,
            timeout=self.flags.request_timeout or 3600.0,
            user_agent="tug/v1.33.0 (tugboat)",
        )

    @property
    def namespace(self) -> str:
        """``-n``, else the context's namespace, else ``default``."""
        if self.flags.namespace:
            return self.flags.namespace
        try:
            return self.cluster.namespace
        except CliError:
            return "default"

    @property
    def explicit_namespace(self) -> bool:
        return bool(self.flags.namespace)

    @cached_property
    def resources(self) -> Any:
        from cli.resources import Resources

        return Resources(self.client)

    def print(self, text: str = "") -> None:
        self.out.write(text + "\n")

    def warn(self, text: str) -> None:
        self.err.write(text + "\n")

    def close(self) -> None:
        if "client" in self.__dict__:
            self.client.close()


# ------------------------------------------------------------------ raw kubeconfig documents


def read_raw(path: str) -> dict[str, Any]:
    """The kubeconfig document at ``path`` as written (``{}`` when the file is absent)."""
    try:
        doc = yaml.safe_load(Path(path).read_text()) or {}
    except FileNotFoundError:
        return {}
    except (OSError, yaml.YAMLError) as e:
        raise CliError(f"cannot read kubeconfig {path}: {e}") from None
    if not isinstance(doc, dict):
        raise CliError(f"kubeconfig {path} is not a mapping")
    return doc


def write_raw(path: str, doc: dict[str, Any]) -> None:
    """Rewrite the kubeconfig at ``path`` (mode 0600, replaced atomically)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_text(yaml.safe_dump(doc, sort_keys=False))
    os.chmod(tmp, 0o600)
    os.replace(tmp, target)

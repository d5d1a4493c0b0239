"""What the cluster verbs share: the data dir's files, the lock, errors, the ``main`` wrapper."""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from .procs import ProcessRef
from .supervisor import LOG_DIR, SPEC_FILE, STATE_FILE, read_json

DEFAULT_DATA_DIR = "~/.tugboat"
REPO = Path(__file__).resolve().parents[2]
CONTAINERD_SCRIPT = REPO / "hack" / "start-containerd.sh"
BUILD_IMAGES_SCRIPT = REPO / "hack" / "build-images.py"


class ClusterError(Exception):
    """A failure to report to the user as one line (``error: ...``, exit 1)."""


class _Parser(argparse.ArgumentParser):
    """argparse that raises :class:`ClusterError` instead of printing usage and exiting 2."""

    def error(self, message: str) -> NoReturn:
        raise ClusterError(f"{message} (see {self.prog} --help)")


def parser(prog: str, description: str) -> argparse.ArgumentParser:
    p = _Parser(prog=prog, description=description)
    p.add_argument(
        "--data-dir",
        default=os.environ.get("TUG_DATA_DIR", DEFAULT_DATA_DIR),
        help="the cluster's directory (default ~/.tugboat, or $TUG_DATA_DIR)",
    )
    return p


@dataclass(frozen=True)
class DataDir:
    """The files of one cluster's data dir."""

    root: Path

    @classmethod
    def at(cls, path: str) -> DataDir:
        return cls(Path(path).expanduser().resolve())

    @property
    def kubeconfig(self) -> Path:
        return self.root / "kubeconfig"

    @property
    def spec_file(self) -> Path:
        return self.root / SPEC_FILE

    @property
    def state_file(self) -> Path:
        return self.root / STATE_FILE

    @property
    def logs(self) -> Path:
        return self.root / LOG_DIR

    def cluster(self) -> dict[str, Any] | None:
        """What ``tug up`` recorded in ``cluster.json`` (None when there is none)."""
        return read_json(self.spec_file)

    def state(self) -> dict[str, Any] | None:
        """The supervisor's last written state (None when there is none)."""
        return read_json(self.state_file)

    def supervisor(self) -> ProcessRef | None:
        """The running supervisor of this cluster, or None."""
        ref = ProcessRef.from_json(self.state())
        return ref if ref is not None and ref.alive() else None

    def looks_like_ours(self) -> bool:
        """True when the directory holds tugboat files (guard for ``--purge``)."""
        marks = (SPEC_FILE, STATE_FILE, "state.db", "kubeconfig")
        return any((self.root / m).exists() for m in marks)

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold ``D/.lock`` so two ``tug up``/``tug down`` never run on one cluster at once."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "w") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise ClusterError(f"another tug up/down is working on {self.root}")
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)


def run_main(body: Callable[[list[str]], int], argv: list[str] | None) -> int:
    """Run a verb; every failure becomes one ``error:`` line on stderr and exit code 1."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        return body(args)
    except ClusterError as err:
        print(f"error: {err}", file=sys.stderr)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # never a traceback for the user
        print(f"error: {type(err).__name__}: {err}", file=sys.stderr)
    return 1

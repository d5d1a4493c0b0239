"""The kubectl-style verbs: argument parsing, dispatch and the one-line error contract.

argparse, not typer: kubectl accepts global flags before *and* after the verb, ``-o=yaml``,
``--flag=false`` for booleans and ``-it`` bundles, and reports a bad flag as one ``error:`` line.
Click (under typer) binds group options only before the sub-command and prints usage boxes on
errors, so the global flags are lifted out by :func:`cli.config.split_globals` and each verb is an
argparse sub-parser whose ``error()`` raises :class:`CliError` instead of printing usage.

Every failure ends as one line on stderr and exit code 1: ``Error from server (Reason): msg``
for API errors, ``error: msg`` for client-side problems (including an unreachable server). An
unexpected exception (a bug) is one ``error:`` line too; ``TUG_DEBUG=1`` adds its traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Callable
from typing import NoReturn

import httpx

from cli.config import Session, split_globals
from cli.errors import CliError
from machinery import errors

Handler = Callable[[Session, argparse.Namespace], int | None]
DEBUG_ENV = "TUG_DEBUG"  # set (not "0"): print the traceback of an unexpected exception


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are :class:`CliError` (one line, exit 1)."""

    def error(self, message: str) -> NoReturn:
        if message.startswith("argument COMMAND: invalid choice: "):
            verb = message.split("'")[1]
            raise CliError(f'unknown command "{verb}" for "tug"')
        if message.startswith("unrecognized arguments: "):
            raise CliError(f"unknown flag: {message.split(': ', 1)[1].split()[0]}")
        raise CliError(message)


GLOBAL_HELP = """global flags (before or after the verb):
  --kubeconfig PATH      kubeconfig file (default: $KUBECONFIG's files merged, else
                         ~/.kube/config, else tug up's ~/.tugboat/kubeconfig)
  --context NAME         kubeconfig context to use
  -s, --server URL       API server address
  -n, --namespace NS     namespace (default: the context's, else "default")
  -A, --all-namespaces   act in every namespace
  --request-timeout D    per-request timeout (e.g. 30s; 0 = none)
"""


def build_parser() -> Parser:
    from cli import verbs

    parser = Parser(
        prog="tug",
        add_help=True,
        epilog=GLOBAL_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="tug controls a tugboat (Kubernetes-style) cluster.",
    )
    sub = parser.add_subparsers(dest="verb", metavar="COMMAND", parser_class=Parser)
    for module in verbs.MODULES:
        module.register(sub)
    return parser


def format_api_error(e: errors.ApiError, prefix: str = "") -> str:
    """``Error from server (Reason): [prefix]message`` as kubectl words it."""
    return f"Error from server ({e.reason}): {prefix}{e.message}"


def run(argv: list[str], session: Session | None = None) -> int:
    """Run one verb; returns the exit code. Never raises for user errors."""
    session = session or Session()
    try:
        flags, rest = split_globals(argv)
        session.flags = flags
        after: list[str] = []
        if "--" in rest:
            cut = rest.index("--")
            rest, after = rest[:cut], rest[cut + 1 :]
        args = build_parser().parse_args(rest)
        args.after_dashes = after
        if not getattr(args, "func", None):
            raise CliError(f'unknown command "{rest[0]}" for "tug"' if rest else "no command")
        return int(args.func(session, args) or 0)
    except CliError as e:
        session.warn(f"error: {e.message}")
        return e.code
    except errors.ApiError as e:
        session.warn(format_api_error(e))
        return 1
    except httpx.TransportError as e:
        server = session.__dict__.get("cluster")
        where = server.server if server else "the configured address"
        session.warn(f"error: the server at {where} is not reachable: {_reason(e)}")
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    except Exception as e:  # a bug, not the user's mistake: still one line unless debugging
        if os.environ.get(DEBUG_ENV, "") not in ("", "0"):
            session.warn(traceback.format_exc().rstrip())
        session.warn(f"error: {type(e).__name__}: {e}" if str(e) else f"error: {type(e).__name__}")
        return 1
    finally:
        session.close()


def _reason(e: httpx.TransportError) -> str:
    if isinstance(e, httpx.ConnectError):
        text = str(e) or "connection failed"
        return "connection refused" if "refused" in text.lower() else text
    if isinstance(e, httpx.TimeoutException):
        return "timed out"
    return str(e) or type(e).__name__


def main(argv: list[str] | None = None) -> int:
    return run(list(sys.argv[1:] if argv is None else argv))

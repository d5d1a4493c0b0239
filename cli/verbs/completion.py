"""``tug completion bash|zsh`` and the hidden ``tug __complete WORDS...`` it calls.

The shell script hands the words typed so far to ``tug __complete``, which answers with the
candidates for the next word: verbs, then resource types (from discovery, so CRDs complete
too), then object names from the server; flags of the verb when the word starts with ``-``.
Candidates come from the live parser, so a new verb or flag completes without editing here.
"""

from __future__ import annotations

import argparse
import contextlib
from typing import Any

from cli.config import Session

SCRIPT = """# tug completion for {shell}; load with: source <(tug completion {shell})
{preamble}_tug_complete() {{
    local cur=${{COMP_WORDS[COMP_CWORD]}}
    local IFS=$'\\n'
    COMPREPLY=($(compgen -W "$(tug __complete "${{COMP_WORDS[@]:1:COMP_CWORD-1}}" 2>/dev/null)" \\
        -- "$cur"))
}}
complete -o default -F _tug_complete tug
"""
# zsh runs the bash function through bashcompinit, whose ``complete`` needs compinit's compdef
ZSH_PREAMBLE = (
    "(( $+functions[compdef] )) || { autoload -U +X compinit && compinit; }\n"
    "autoload -U +X bashcompinit && bashcompinit\n"
)
# verbs whose first positional argument is a resource type, and the second an object name
TYPED_VERBS = {
    "get",
    "describe",
    "delete",
    "edit",
    "label",
    "annotate",
    "patch",
    "scale",
    "wait",
    "explain",
}
POD_VERBS = {"logs", "exec", "port-forward", "attach"}


def register(sub: Any) -> None:
    p = sub.add_parser("completion", help="print a shell completion script (bash or zsh)")
    p.add_argument("shell", choices=["bash", "zsh"])
    p.set_defaults(func=run_completion)
    p = sub.add_parser("__complete")
    p.add_argument("words", nargs=argparse.REMAINDER)
    p.set_defaults(func=run_complete)


def run_completion(session: Session, args: argparse.Namespace) -> int:
    preamble = ZSH_PREAMBLE if args.shell == "zsh" else ""
    session.out.write(SCRIPT.format(shell=args.shell, preamble=preamble))
    return 0


def candidates(
    parser: argparse.ArgumentParser, words: list[str], session: Session | None
) -> list[str]:
    """The completions for the word after ``words`` (best effort: no server → no names)."""
    from cli.main import COMPONENTS

    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    verbs = sorted(v for v in sub.choices if not v.startswith("__"))
    positional = [w for w in words if not w.startswith("-")]
    if not positional:
        return verbs + sorted(COMPONENTS)
    verb, rest = positional[0], positional[1:]
    verb_parser = sub.choices.get(verb)
    flags = sorted(
        o for a in (verb_parser._actions if verb_parser else []) for o in a.option_strings
    )
    out: list[str] = list(flags)
    if session is None:
        return out
    with contextlib.suppress(Exception):
        if verb in TYPED_VERBS and not rest:
            out += sorted({t.plural for t in session.resources.types})
        elif verb in TYPED_VERBS and len(rest) == 1:
            rt = session.resources.resolve(rest[0].split("/")[0])
            out += _names(session, rt)
        elif verb in POD_VERBS and not rest:
            out += _names(session, session.resources.resolve("pods"))
    return out


def _names(session: Session, rt: Any) -> list[str]:
    body = session.client.list(rt, session.namespace if rt.namespaced else None, limit=500)
    return sorted(o["metadata"]["name"] for o in body.get("items") or [])


def run_complete(session: Session, args: argparse.Namespace) -> int:
    from cli.app import build_parser

    for word in candidates(build_parser(), args.words, session):
        session.out.write(word + "\n")
    return 0

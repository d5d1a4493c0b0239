"""Shell completion: the script, and the candidates ``tug __complete`` offers."""

from __future__ import annotations

import os
import subprocess


def test_completion_script_loads_in_bash(tug):
    out = tug("completion", "bash")
    assert out.code == 0 and "complete -o default -F _tug_complete tug" in out.out
    r = subprocess.run(
        ["bash", "-c", out.out + "\ncomplete -p tug"], capture_output=True, text=True, timeout=30
    )
    assert r.returncode == 0 and "_tug_complete" in r.stdout


def test_candidates_follow_the_words(tug, ns):
    verbs = tug("__complete").out.split()
    assert {"get", "apply", "rollout", "completion", "apiserver", "up"} <= set(verbs)
    types = tug("__complete", "get").out.split()
    assert {"pods", "deployments", "configmaps"} <= set(types)
    tug("-n", ns, "create", "configmap", "complete-me")
    names = tug("-n", ns, "__complete", "get", "configmaps").out.split()
    assert "complete-me" in names
    flags = tug("__complete", "get", "--").out.split()
    assert {"--output", "-l"} <= set(flags)


def test_completion_script_for_zsh(tug, tmp_path):
    """zsh runs the bash function through bashcompinit; where zsh is installed, it loads."""
    import shutil

    out = tug("completion", "zsh")
    assert out.code == 0
    lines = out.out.splitlines()
    assert lines[0] == "# tug completion for zsh; load with: source <(tug completion zsh)"
    assert lines[1] == "(( $+functions[compdef] )) || { autoload -U +X compinit && compinit; }"
    assert lines[2] == "autoload -U +X bashcompinit && bashcompinit"
    assert "complete -o default -F _tug_complete tug" in lines
    assert tug("completion", "fish").err.startswith("error: argument shell: invalid choice")
    if shutil.which("zsh") is None:
        return  # the shell is not on this machine: the text above is what it would read
    script = tmp_path / "tug.zsh"
    script.write_text(out.out)
    r = subprocess.run(
        ["zsh", "-f", "-c", f"source {script} && whence -w _tug_complete"],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "HOME": str(tmp_path)},  # compinit writes ~/.zcompdump
    )
    assert r.returncode == 0 and "_tug_complete: function" in r.stdout, r.stderr

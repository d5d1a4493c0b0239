"""Shell completion: the script, and the candidates ``tug __complete`` offers."""

from __future__ import annotations

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

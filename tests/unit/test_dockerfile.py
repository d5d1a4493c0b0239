"""Dockerfile parsing (pure) and the build cache's keys."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubelet.images.build import (
    BuildError,
    _State,
    context_digest,
    normalize,
    resolve_sources,
    step_key,
)
from kubelet.images.dockerfile import DockerfileError, Instruction, expand, parse


def test_parse_every_supported_instruction() -> None:
    df = parse(
        "ARG BASE=busybox:1.35\n"
        "FROM $BASE\n"
        "# comment\n"
        "ARG WHO=world\n"
        'ENV GREETING=hello NAME="a b"\n'
        "ENV LEGACY value with spaces\n"
        "WORKDIR /app/$GREETING\n"
        "COPY --chown=1:2 a b /dst/\n"
        "ADD site.tar /www\n"
        "RUN echo $WHO && \\\n    echo done\n"
        "EXPOSE 8080 53/udp\n"
        "USER 33\n"
        "LABEL tier=web\n"
        'ENTRYPOINT ["/bin/run", "x"]\n'
        "CMD serve --port 8080\n",
        {"WHO": "you"},
    )
    assert df.base == "busybox:1.35"
    got = [(s.cmd, s.args, s.exec_form) for s in df.steps]
    assert got == [
        ("ARG", ("WHO=you",), False),
        ("ENV", ("GREETING=hello", "NAME=a b"), False),
        ("ENV", ("LEGACY=value with spaces",), False),
        ("WORKDIR", ("/app/hello",), False),
        ("COPY", ("a", "b", "/dst/"), False),
        ("ADD", ("site.tar", "/www"), False),
        ("RUN", ("echo $WHO &&  echo done",), False),
        ("EXPOSE", ("8080", "53/udp"), False),
        ("USER", ("33",), False),
        ("LABEL", ("tier=web",), False),
        ("ENTRYPOINT", ("/bin/run", "x"), True),
        ("CMD", ("serve --port 8080",), False),
    ]
    assert df.steps[4].flag("chown") == "1:2"
    assert df.steps[6].line == 10


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("FROM x\nFROB y\n", 2, "unknown instruction: FROB"),
        ("RUN true\n", 1, "RUN before FROM"),
        ("FROM x\nHEALTHCHECK CMD true\n", 2, "HEALTHCHECK is not supported"),
        ("FROM x\nFROM y\n", 2, "multi-stage builds"),
        ("FROM x\nCOPY onlyone\n", 2, "COPY requires a source and a destination"),
        ("FROM x\nRUN\n", 2, "RUN requires at least one argument"),
        ("# nothing\n", 1, "no FROM instruction"),
        ("FROM x\nENV lonely\n", 2, "ENV lonely needs a value"),
    ],
    ids=[
        "unknown",
        "before-from",
        "unsupported",
        "two-stages",
        "copy-args",
        "empty",
        "no-from",
        "env",
    ],
)
def test_bad_dockerfiles_name_the_line(text: str, line: int, message: str) -> None:
    with pytest.raises(DockerfileError, match=message) as info:
        parse(text)
    assert info.value.line == line
    assert str(info.value).startswith(f"Dockerfile:{line}: ")


@pytest.mark.parametrize(
    ("text", "expected"),
    [("$A/${B}", "1/2"), ("${C:-dflt}", "dflt"), ("${A:+alt}", "alt"), ("\\$A", "$A"), ("$C", "")],
)
def test_expand(text: str, expected: str) -> None:
    assert expand(text, {"A": "1", "B": "2"}) == expected


def test_exec_form_falls_back_to_shell_form_on_bad_json() -> None:
    step = parse('FROM x\nCMD ["unterminated\n').steps[0]
    assert (step.args, step.exec_form) == (('["unterminated',), False)


@pytest.mark.parametrize(
    ("ref", "full"),
    [
        ("busybox", "docker.io/library/busybox:latest"),
        ("busybox:1.35", "docker.io/library/busybox:1.35"),
        ("tugboat/web:1", "docker.io/tugboat/web:1"),
        ("localhost:5000/app", "localhost:5000/app:latest"),
        ("127.0.0.1:5000/a/b:2", "127.0.0.1:5000/a/b:2"),
        ("localhost/x:1", "localhost/x:1"),
    ],
)
def test_normalize(ref: str, full: str) -> None:
    assert normalize(ref) == full


RUN = Instruction(3, "RUN", ("make",))


def test_step_key_depends_on_parent_instruction_and_inputs() -> None:
    base = step_key("parent", RUN)
    assert base == step_key("parent", Instruction(9, "RUN", ("make",), text="other text"))
    assert base != step_key("other-parent", RUN)
    assert base != step_key("parent", Instruction(3, "RUN", ("make all",)))
    assert base != step_key("parent", RUN, inputs="digest")
    assert base != step_key("parent", Instruction(3, "RUN", ("make",), exec_form=True))


def test_context_digest_tracks_contents_modes_and_names(tmp_path: Path) -> None:
    (tmp_path / "dir").mkdir()
    f = tmp_path / "dir" / "a.txt"
    f.write_text("one")
    digest = lambda: context_digest(tmp_path, [tmp_path / "dir"])  # noqa: E731
    first = digest()
    assert digest() == first
    f.write_text("two")
    second = digest()
    assert second != first
    f.chmod(0o755)
    assert digest() != second
    f.chmod(0o644)
    (tmp_path / "unrelated").write_text("x")
    assert digest() == second  # only what COPY reads counts


def test_dockerignore_patterns_leave_the_key_alone(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text("x")
    before = context_digest(tmp_path, [tmp_path], ["*.log"])
    (tmp_path / "debug.log").write_text("noise")
    assert context_digest(tmp_path, [tmp_path], ["*.log"]) == before


@pytest.mark.parametrize(
    ("source", "message"),
    [("missing.txt", "file not found in build context"), ("../etc", "outside the build context"),
     ("http://x/y", "remote URLs are not supported")],
)  # fmt: skip
def test_sources_must_be_in_the_context(tmp_path: Path, source: str, message: str) -> None:
    (tmp_path / "ctx").mkdir()
    (tmp_path / "etc").mkdir()
    with pytest.raises(BuildError, match=message):
        resolve_sources(tmp_path / "ctx", [source])


def _flags(text: str) -> list[list[str]]:
    """The ``umoci config`` flags of each config step, with the state the build carries."""
    state, out = _State(), []
    for step in parse("FROM base\n" + text).steps:
        if step.cmd not in ("ARG", "RUN", "COPY", "ADD"):
            out.append(state.config_flags(step))
        state.after(step)
    return out


@pytest.mark.parametrize(
    ("text", "flags"),
    [
        ('ENV A=1 B="two words"\n', [["--config.env", "A=1", "--config.env", "B=two words"]]),
        ("LABEL tier=web\n", [["--config.label", "tier=web"]]),
        ("EXPOSE 8080 53/udp\n", [["--config.exposedports", "8080/tcp",
                                   "--config.exposedports", "53/udp"]]),
        ("USER 1000:1000\n", [["--config.user", "1000:1000"]]),
        ("WORKDIR /app\nWORKDIR sub\n", [["--config.workingdir", "/app"],
                                         ["--config.workingdir", "/app/sub"]]),
        ('CMD ["serve", "-v"]\n', [["--clear", "config.cmd", "--config.cmd", "serve",
                                    "--config.cmd", "-v"]]),
        ("CMD serve -v\n", [["--clear", "config.cmd", "--config.cmd", "/bin/sh",
                             "--config.cmd", "-c", "--config.cmd", "serve -v"]]),
        ('ENTRYPOINT ["/run"]\n', [["--clear", "config.entrypoint", "--clear", "config.cmd",
                                    "--config.entrypoint", "/run"]]),
        ("ENTRYPOINT exec run\n", [["--clear", "config.entrypoint", "--clear", "config.cmd",
                                    "--config.entrypoint", "/bin/sh", "--config.entrypoint",
                                    "-c", "--config.entrypoint", "exec run"]]),
        ('CMD ["x"]\nENTRYPOINT ["/run"]\n', [
            ["--clear", "config.cmd", "--config.cmd", "x"],
            ["--clear", "config.entrypoint", "--config.entrypoint", "/run"],
        ]),
    ],
    ids=["env", "label", "expose-default-tcp", "user", "workdir-relative", "cmd-exec",
         "cmd-shell", "entrypoint-exec-clears-inherited-cmd", "entrypoint-shell",
         "entrypoint-keeps-this-files-cmd"],
)  # fmt: skip
def test_config_flags(text: str, flags: list[list[str]]) -> None:
    assert _flags(text) == flags


def test_only_metadata_instructions_are_config_steps() -> None:
    with pytest.raises(BuildError, match="RUN is not a config instruction"):
        _State().config_flags(Instruction(1, "RUN", ("true",)))

"""``tug registry`` and ``tug image build`` beyond the main build test
(tests/e2e/test_registry_build.py): the registry's own commands, and Dockerfiles built FROM
scratch, FROM an image in the local registry and FROM a containerd image, checked through the
image config containerd reports for the loaded result (CRI ImageStatus, verbose).

- ``tug registry up --port P --data-dir D`` / ``status`` / ``down`` run as the ``tug``
  program, as a user runs them (the registry outlives ``up``);
- FROM scratch: COPY a static busybox, then ENV, WORKDIR, EXPOSE, LABEL, USER and exec-form
  ENTRYPOINT + CMD; only the COPY adds a layer;
- FROM ``127.0.0.1:P/base/busybox:1`` (pushed to the registry first, absent from containerd):
  ADD of a local file and of a local tar (extracted), checked by a RUN inside the build, and a
  shell-form CMD, built through ``tug image build``;
- FROM busybox with a shell-form ENTRYPOINT: the base's CMD is cleared, as Docker does.
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli.app import run as tug
from cli.config import Globals, Session
from kubelet.cri import api_pb2 as pb
from kubelet.images import registry
from kubelet.images.build import Builder
from kubelet.images.store import list_images
from tests.conftest import free_port
from tests.e2e.conftest import ContainerdRuntime

pytestmark = pytest.mark.e2e
TUG = [sys.executable, "-c", "import sys; from cli.main import main; sys.exit(main())"]


def run_tug(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = tug(list(argv), Session(flags=Globals(), out=out, err=err))
    return code, out.getvalue(), err.getvalue()


def tug_program(*argv: str) -> subprocess.CompletedProcess[str]:
    """``tug ARGV`` as its own process."""
    return subprocess.run([*TUG, *argv], capture_output=True, text=True, timeout=60, check=False)


def image_config(runtime: ContainerdRuntime, name: str) -> dict:
    """The OCI image (config and rootfs) containerd holds for ``name``, through CRI."""
    req = pb.ImageStatusRequest(image=pb.ImageSpec(image=name), verbose=True)
    with runtime.client() as cri:
        resp = cri._call("image", "ImageStatus", req)
    assert resp.HasField("image"), f"{name} is not in containerd"
    return json.loads(resp.info["info"])["imageSpec"]


@pytest.fixture(scope="module")
def registry_binary() -> None:
    if shutil.which(registry.BINARY) is None:
        pytest.skip(f"{registry.BINARY} not installed (hack/install-runtime.sh)")


# ------------------------------------------------------------------ tug registry


def test_registry_up_status_down(registry_binary: None, tmp_path: Path) -> None:
    data, port = tmp_path / "reg", free_port()
    address = f"127.0.0.1:{port}"
    up = tug_program("registry", "up", "--port", str(port), "--data-dir", str(data))
    assert up.returncode == 0, up.stderr
    pid = registry.status(data.resolve()).pid  # type: ignore[union-attr]
    try:
        assert up.stdout == f"registry running at {address} (pid {pid}, data {data})\n"
        assert f"addr: {address}" in (data / "config.yml").read_text()
        assert (data / "data").is_dir()
        assert registry.ping(address) is None
        again = tug_program("registry", "up", "--port", str(port), "--data-dir", str(data))
        assert again.stdout == up.stdout  # already running: the same registry
        st = tug_program("registry", "status", "--data-dir", str(data))
        assert (st.returncode, st.stdout) == (
            0,
            f"registry running at {address} (pid {pid}): healthy\n",
        )
        down = tug_program("registry", "down", "--data-dir", str(data))
        assert (down.returncode, down.stdout) == (0, "registry stopped\n")
        assert registry.ping(address) == f"registry {address} is not reachable (connection refused)"
        st = tug_program("registry", "status", "--data-dir", str(data))
        assert (st.returncode, st.stdout) == (1, "registry not running\n")
        down = tug_program("registry", "down", "--data-dir", str(data))
        assert (down.returncode, down.stdout) == (0, "registry not running\n")
        assert (data / "config.yml").exists()  # its data stays
    finally:
        registry.stop(data)


@pytest.fixture(scope="module")
def cli_registry(
    registry_binary: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Path]]:
    """A registry started with ``tug registry up``: its address and data dir."""
    data, port = tmp_path_factory.mktemp("registry-cli"), free_port()
    up = tug_program("registry", "up", "--port", str(port), "--data-dir", str(data))
    assert up.returncode == 0, up.stderr
    try:
        yield f"127.0.0.1:{port}", data
    finally:
        tug_program("registry", "down", "--data-dir", str(data))


# ------------------------------------------------------------------ builds


def _write(ctx: Path, dockerfile: str, files: dict[str, str]) -> Path:
    ctx.mkdir(parents=True)
    (ctx / "Dockerfile").write_text(dockerfile)
    for name, text in files.items():
        (ctx / name).parent.mkdir(parents=True, exist_ok=True)
        (ctx / name).write_text(text)
    return ctx


def test_from_scratch_image_config(containerd_runtime: ContainerdRuntime, tmp_path: Path) -> None:
    ctx = _write(
        tmp_path / "ctx",
        "FROM scratch\n"
        "COPY busybox /bin/busybox\n"
        'ENV A=1 B="two words"\n'
        "WORKDIR /srv\n"
        "EXPOSE 8080 53/udp\n"
        "LABEL org.example.tier=scratch\n"
        "USER 1000:1000\n"
        'ENTRYPOINT ["/bin/busybox"]\n'
        'CMD ["echo", "hi"]\n',
        {},
    )
    shutil.copy2("/bin/busybox", ctx / "busybox")  # statically linked (Debian busybox)
    name = f"localhost/e2e/scratch:{uuid.uuid4().hex[:8]}"
    result = Builder(tmp_path / "cache", [containerd_runtime.socket]).build(ctx, name)
    assert result.cached_steps == 0
    spec = image_config(containerd_runtime, name)
    config = spec["config"]
    assert config["Env"] == ["A=1", "B=two words"]
    assert config["WorkingDir"] == "/srv"
    assert config["ExposedPorts"] == {"8080/tcp": {}, "53/udp": {}}
    assert config["Labels"] == {"org.example.tier": "scratch"}
    assert config["User"] == "1000:1000"
    assert (config["Entrypoint"], config["Cmd"]) == (["/bin/busybox"], ["echo", "hi"])
    assert len(spec["rootfs"]["diff_ids"]) == 1  # only COPY wrote files
    assert len(spec["history"]) == 8  # one entry per instruction, as Docker records


def test_from_a_registry_image_with_add_through_tug_image_build(
    containerd_runtime: ContainerdRuntime, cli_registry: tuple[str, Path], tmp_path: Path
) -> None:
    address, data = cli_registry
    base = f"{address}/base/busybox:1"
    flags = ["--data-dir", str(tmp_path / "tug"), "--socket", containerd_runtime.socket]
    code, _, err = run_tug("image", "push", containerd_runtime.busybox_image, base, *flags)
    assert code == 0, err
    assert base not in {i.name for i in list_images(containerd_runtime.socket)}
    st = tug_program("registry", "status", "--data-dir", str(data))
    assert st.stdout.splitlines()[1:] == ["  base/busybox"]

    ctx = _write(
        tmp_path / "ctx",
        f"FROM {base}\n"
        "ADD hello.txt /srv/\n"
        "ADD bundle.tar /opt/\n"
        'RUN test "$(cat /srv/hello.txt)" = hello && test "$(cat /opt/bundle/a.txt)" = a'
        ' && test "$(cat /opt/bundle/sub/b.txt)" = b && test ! -e /opt/bundle.tar\n'
        "CMD cat /srv/hello.txt\n",
        {"hello.txt": "hello\n", "bundle/a.txt": "a\n", "bundle/sub/b.txt": "b\n"},
    )
    with tarfile.open(ctx / "bundle.tar", "w") as tar:
        tar.add(ctx / "bundle", "bundle")
    shutil.rmtree(ctx / "bundle")
    name = f"localhost/e2e/from-registry:{uuid.uuid4().hex[:8]}"
    code, out, err = run_tug("image", "build", "-t", name, str(ctx), *flags)
    assert code == 0, err
    assert out.startswith("sha256:")
    assert f"built {name} in " in err and "(0/4 steps cached), loaded into 1 node(s)" in err
    config = image_config(containerd_runtime, name)["config"]
    assert config["Cmd"] == ["/bin/sh", "-c", "cat /srv/hello.txt"]
    assert "Entrypoint" not in config or not config["Entrypoint"]
    again = run_tug("image", "build", "-t", name, str(ctx), *flags)
    assert "(4/4 steps cached)" in again[2] and again[1] == out


def test_shell_form_entrypoint_clears_the_base_cmd(
    containerd_runtime: ContainerdRuntime, tmp_path: Path
) -> None:
    base = image_config(containerd_runtime, containerd_runtime.busybox_image)["config"]
    assert base.get("Cmd")  # busybox runs sh by default: there is a CMD to clear
    ctx = _write(tmp_path / "ctx", "FROM busybox:1.35\nENTRYPOINT exec echo hi\n", {})
    name = f"localhost/e2e/entrypoint:{uuid.uuid4().hex[:8]}"
    Builder(tmp_path / "cache", [containerd_runtime.socket]).build(ctx, name)
    config = image_config(containerd_runtime, name)["config"]
    assert config["Entrypoint"] == ["/bin/sh", "-c", "exec echo hi"]
    assert not config.get("Cmd")

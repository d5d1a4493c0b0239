"""``tug image build``: a Dockerfile → an OCI image, one layer per RUN/COPY/ADD, cached.

Building blocks (Debian packages, see ``hack/install-runtime.sh``): **umoci** owns the OCI
layout (unpack a rootfs, compute the layer diff of a RUN with go-mtree, insert COPY content,
edit the image config and history), **runc** executes RUN in that rootfs (own network
namespace with only loopback, Docker's default capabilities), **skopeo** brings base images in
(from a containerd export or a registry). No layer tar is written by hand here.

Cache contract: every instruction has a key, ``sha256(parent key, instruction, inputs)``
(:func:`step_key`); the key of ``FROM`` is the base image's manifest digest, the inputs of
COPY/ADD are the digest of the files they read (:func:`context_digest`), build args reach the
key through the ``ARG`` steps. The image after each step is tagged ``k-<key>`` in one OCI
layout (``<cache>/oci``); a step whose tag exists is not run again, so an unchanged
Dockerfile and context rebuild without running anything and give the same manifest.
"""

from __future__ import annotations

import fnmatch
import glob
import hashlib
import io
import json
import os
import shutil
import stat
import subprocess
import tarfile
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from . import store
from .dockerfile import Dockerfile, DockerfileError, Instruction, parse
from .oci import NAME_ANNOTATION, REF_ANNOTATION

# Docker's default capability set for RUN.
_CAPS = "CHOWN DAC_OVERRIDE FSETID FOWNER MKNOD NET_RAW SETGID SETUID SETFCAP SETPCAP"
CAPABILITIES = [f"CAP_{c}" for c in [*_CAPS.split(), "NET_BIND_SERVICE", "SYS_CHROOT", "KILL"]]
CAPABILITIES.append("CAP_AUDIT_WRITE")
REF_NAME = REF_ANNOTATION


class BuildError(Exception):
    """A build that cannot go on; ``str()`` is one line meant for the user."""


@dataclass(frozen=True)
class StepResult:
    text: str
    key: str
    cached: bool
    seconds: float


@dataclass
class BuildResult:
    """The built image: its name, manifest digest, the archive loaded into containerd."""

    name: str
    tag: str
    digest: str
    archive: Path
    steps: list[StepResult] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def cached_steps(self) -> int:
        return sum(s.cached for s in self.steps)


# ------------------------------------------------------------------------ pure: names, keys


def normalize(ref: str) -> str:
    """A fully qualified reference as CRI spells it: ``busybox`` →
    ``docker.io/library/busybox:latest``, ``localhost:5000/app`` → ``localhost:5000/app:latest``."""
    name, _, digest = ref.partition("@")
    first, _, rest = name.partition("/")
    if not rest:
        name = f"docker.io/library/{name}"
    elif "." not in first and ":" not in first and first != "localhost":
        name = f"docker.io/{name}"
    if ":" not in name.rsplit("/", 1)[-1] and not digest:
        name += ":latest"
    return f"{name}@{digest}" if digest else name


def registry_host(ref: str) -> str:
    """The registry part of a normalized reference (``docker.io``, ``127.0.0.1:5000``)."""
    return normalize(ref).split("/", 1)[0]


def is_loopback_registry(ref: str) -> bool:
    host = registry_host(ref).rsplit(":", 1)[0]
    return host in ("localhost", "127.0.0.1", "[::1]")


def step_key(parent: str, step: Instruction, inputs: str = "") -> str:
    """The cache key of ``step`` on top of the image with key ``parent``."""
    doc = [parent, step.cmd, list(step.args), step.exec_form, sorted(step.flags), inputs]
    return hashlib.sha256(json.dumps(doc, separators=(",", ":")).encode()).hexdigest()


def read_dockerignore(context: Path) -> list[str]:
    path = context / ".dockerignore"
    if not path.exists():
        return []
    lines = (ln.strip() for ln in path.read_text().splitlines())
    return [ln.strip("/") for ln in lines if ln and not ln.startswith("#")]


def _ignored(rel: str, patterns: list[str]) -> bool:
    return any(fnmatch.fnmatch(rel, p) or rel.startswith(p + "/") for p in patterns)


def resolve_sources(context: Path, sources: Iterable[str], cmd: str = "COPY") -> list[Path]:
    """The context paths a COPY/ADD reads (globs expanded); each must exist inside context."""
    root = context.resolve()
    out: list[Path] = []
    for src in sources:
        if "://" in src:
            raise BuildError(f"{cmd} {src}: remote URLs are not supported (offline builds)")
        matches = sorted(glob.glob(str(root / src.lstrip("/"))))
        if not matches:
            raise BuildError(f"{cmd} failed: file not found in build context: {src}")
        for m in matches:
            p = Path(m).resolve()
            if p != root and root not in p.parents:
                raise BuildError(f"{cmd} failed: {src} is outside the build context")
            out.append(Path(m))
    return out


def context_digest(context: Path, paths: Iterable[Path], ignore: list[str] | None = None) -> str:
    """Digest of the files a COPY reads: relative paths, types, modes, contents, link targets."""
    root = context.resolve()
    h = hashlib.sha256()
    for top in paths:
        walk = [top] if not top.is_dir() or top.is_symlink() else [top, *sorted(top.rglob("*"))]
        for p in walk:
            rel = str(p.relative_to(root)) if p != root else "."
            if ignore and _ignored(rel, ignore):
                continue
            st = p.lstat()
            h.update(f"{rel}\0{stat.S_IFMT(st.st_mode)}\0{stat.S_IMODE(st.st_mode)}\0".encode())
            if stat.S_ISLNK(st.st_mode):
                h.update(os.readlink(p).encode())
            elif stat.S_ISREG(st.st_mode):
                h.update(hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()


# ------------------------------------------------------------------------ the builder


def run_tool(cmd: list[str], what: str, timeout: float = 600, **kw: object) -> str:
    try:
        done = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout, check=False, **kw
        )  # type: ignore[call-overload]
    except FileNotFoundError:
        raise BuildError(f"{cmd[0]} not found (hack/install-runtime.sh installs it)") from None
    except subprocess.TimeoutExpired:
        raise BuildError(f"{what}: no result within {timeout:g}s") from None
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines() or ["(no output)"]
        raise BuildError(f"{what}: {lines[-1]}")
    return done.stdout


class Builder:
    """Builds Dockerfiles into the OCI layout under ``cache_dir``.

    ``sockets`` are the containerd instances: base images are looked up in the first one and
    the result is loaded into each. ``say`` receives one line per step."""

    def __init__(
        self,
        cache_dir: Path,
        sockets: list[str] | None = None,
        say: Callable[[str], None] | None = None,
    ) -> None:
        self.cache = Path(cache_dir)
        self.layout = self.cache / "oci"
        self.sockets = sockets or []
        self.say = say or (lambda _line: None)

    # -- public

    def build(
        self,
        context: Path,
        name: str,
        dockerfile: Path | None = None,
        build_args: Mapping[str, str] | None = None,
        load: bool = True,
    ) -> BuildResult:
        started = time.monotonic()
        context = Path(context)
        path = dockerfile or context / "Dockerfile"
        try:
            text = Path(path).read_text()
        except OSError as e:
            raise BuildError(f"cannot read {path}: {e.strerror}") from None
        try:
            df = parse(text, build_args, source=str(path))
        except DockerfileError as e:
            raise BuildError(str(e)) from None
        name = normalize(name)
        self._init_layout()
        tag, key = self._base(df)
        steps: list[StepResult] = []
        state = _State()
        ignore = read_dockerignore(context)
        for step in df.steps:
            t0 = time.monotonic()
            inputs = ""
            if step.cmd in ("COPY", "ADD"):
                sources = resolve_sources(context, step.args[:-1], step.cmd)
                inputs = context_digest(context, sources, ignore)
            key = step_key(key, step, inputs)
            new_tag = f"k-{key}"
            cached = step.cmd == "ARG" or self._has(new_tag)
            if not cached:
                try:
                    self._execute(step, state, tag, new_tag, context, ignore)
                except BuildError as e:
                    raise BuildError(f"{path}:{step.line}: {step.cmd}: {e}") from None
            state.after(step)
            if step.cmd != "ARG":
                tag = new_tag
            steps.append(StepResult(step.text, key, cached, time.monotonic() - t0))
            self.say(f"{'CACHED ' if cached else ''}[{len(steps)}/{len(df.steps)}] {step.text}")
        archive = self.cache / "archives" / f"{key}.tar"
        digest = self.export(tag, name, archive)
        self._remember(name, tag)
        if load:
            for socket in self.sockets:
                store.load_image(socket, archive)
        return BuildResult(name, tag, digest, archive, steps, time.monotonic() - started)

    def tag_of(self, name: str) -> str | None:
        """The layout tag of an image this cache built under ``name`` (else ``None``)."""
        names = self._names()
        return names.get(normalize(name))

    def export(self, tag: str, name: str, path: Path) -> str:
        """Write an OCI archive of ``tag`` named ``name`` (for ``ctr images import``);
        returns the manifest digest. Only index.json is written here: blobs are copied."""
        desc = self._descriptor(tag)
        manifest = json.loads(self._blob(desc["digest"]))
        digests = [desc["digest"], manifest["config"]["digest"]]
        digests += [layer["digest"] for layer in manifest["layers"]]
        short = name.rsplit(":", 1)[1] if ":" in name.rsplit("/", 1)[-1] else "latest"
        entry = {**desc, "annotations": {NAME_ANNOTATION: name, REF_NAME: short}}
        index = {"schemaVersion": 2, "manifests": [entry]}
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        with tarfile.open(tmp, "w") as tar:
            tar.add(self.layout / "oci-layout", "oci-layout")
            data = json.dumps(index).encode()
            info = tarfile.TarInfo("index.json")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
            for d in dict.fromkeys(digests):
                tar.add(self._blob_path(d), "blobs/sha256/" + d.split(":", 1)[1])
        tmp.replace(path)
        return str(desc["digest"])

    # -- base image

    def _base(self, df: Dockerfile) -> tuple[str, str]:
        if df.base == "scratch":
            if not self._has("scratch"):
                run_tool(["umoci", "new", "--image", f"{self.layout}:scratch"], "FROM scratch")
            return "scratch", hashlib.sha256(b"scratch").hexdigest()
        ref = normalize(df.base)
        digest = self._local_digest(ref)
        if digest:
            tag = "base-" + digest.split(":", 1)[1]
            if not self._has(tag):
                self._import_from_containerd(ref, tag)
            return tag, digest
        return self._pull_base(ref)

    def _local_digest(self, ref: str) -> str | None:
        if not self.sockets:
            return None
        for image in store.list_images(self.sockets[0]):
            if image.name == ref:
                return image.digest
        return None

    def _import_from_containerd(self, ref: str, tag: str) -> None:
        tmp = self.cache / "tmp" / f"{uuid.uuid4().hex}.tar"
        tmp.parent.mkdir(parents=True, exist_ok=True)
        try:
            socket = self.sockets[0].removeprefix("unix://")
            run_tool(
                ["ctr", "-a", socket, "-n", store.NAMESPACE, "images", "export", str(tmp), ref],
                f"FROM {ref}: export from containerd",
            )
            run_tool(
                ["skopeo", "copy", "-q", f"oci-archive:{tmp}", f"oci:{self.layout}:{tag}"],
                f"FROM {ref}: copy into the build cache",
            )
        finally:
            tmp.unlink(missing_ok=True)

    def _pull_base(self, ref: str) -> tuple[str, str]:
        tls = ["--tls-verify=false"] if is_loopback_registry(ref) else []
        try:
            raw = run_tool(
                ["skopeo", "inspect", *tls, "--raw", f"docker://{ref}"], f"FROM {ref}", 60
            )
        except BuildError as e:
            raise BuildError(f"FROM {ref}: not in containerd and not pullable ({e})") from None
        digest = "sha256:" + hashlib.sha256(raw.encode()).hexdigest()
        tag = "base-" + digest.split(":", 1)[1]
        if not self._has(tag):
            src_tls = ["--src-tls-verify=false"] if tls else []
            run_tool(
                ["skopeo", "copy", "-q", *src_tls, f"docker://{ref}", f"oci:{self.layout}:{tag}"],
                f"FROM {ref}: pull",
            )
        return tag, digest

    # -- steps

    def _execute(
        self,
        step: Instruction,
        state: _State,
        tag: str,
        new_tag: str,
        context: Path,
        ignore: list[str],
    ) -> None:
        image = f"{self.layout}:{tag}"
        history = ["--history.created_by", step.text]
        if step.cmd == "RUN":
            self._run_step(step, state, image, new_tag, history)
        elif step.cmd in ("COPY", "ADD"):
            self._copy_step(step, state, image, new_tag, context, ignore, history)
        else:
            cfg = state.config_flags(step)
            run_tool(
                ["umoci", "config", "--image", image, "--tag", new_tag, *cfg, *history], "config"
            )

    def _run_step(
        self, step: Instruction, state: _State, image: str, new_tag: str, history: list[str]
    ) -> None:
        work = self.cache / "tmp" / uuid.uuid4().hex
        work.parent.mkdir(parents=True, exist_ok=True)
        bundle = work / "bundle"
        try:
            run_tool(["umoci", "unpack", "--image", image, str(bundle)], "unpack")
            config_path = bundle / "config.json"
            config = json.loads(config_path.read_text())
            proc = config["process"]
            proc["terminal"] = False
            proc["args"] = list(step.args) if step.exec_form else ["/bin/sh", "-c", step.args[0]]
            env = dict(e.split("=", 1) for e in proc.get("env", []))
            env.update({k: v for k, v in state.args.items() if k not in env})
            proc["env"] = [f"{k}={v}" for k, v in env.items()]
            proc["capabilities"] = {k: CAPABILITIES for k in ("bounding", "effective", "permitted")}
            proc["noNewPrivileges"] = False
            config["hostname"] = "tug-build"
            config_path.write_text(json.dumps(config))
            container = f"tug-build-{uuid.uuid4().hex[:12]}"
            done = subprocess.run(
                ["runc", "--root", str(self.cache / "runc"), "run", "--bundle", str(bundle),
                 container],
                capture_output=True, text=True, timeout=3600, check=False,
            )  # fmt: skip
            for line in (done.stdout + done.stderr).splitlines():
                self.say(f"  | {line}")
            if done.returncode != 0:
                last = (done.stderr.strip().splitlines() or [""])[-1]
                raise BuildError(
                    f"{step.args[0] if not step.exec_form else json.dumps(list(step.args))!r} "
                    f"returned a non-zero code: {done.returncode}" + (f" ({last})" if last else "")
                )
            run_tool(
                ["umoci", "repack", "--image", f"{self.layout}:{new_tag}", *history, str(bundle)],
                "repack",
            )
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def _copy_step(
        self,
        step: Instruction,
        state: _State,
        image: str,
        new_tag: str,
        context: Path,
        ignore: list[str],
        history: list[str],
    ) -> None:
        sources = resolve_sources(context, step.args[:-1], step.cmd)
        dest = state.absolute(step.args[-1])
        as_dir = step.args[-1].endswith("/") or len(sources) > 1 or sources[0].is_dir()
        uid, gid = _owner(step.flag("chown"))
        work = self.cache / "tmp" / uuid.uuid4().hex
        stage = work / "stage"
        stage.mkdir(parents=True)
        try:
            if as_dir:
                for src in sources:
                    _stage(src, stage, step.cmd == "ADD", context, ignore)
                target = stage
            else:
                _stage(sources[0], stage, step.cmd == "ADD", context, ignore)
                target = stage / sources[0].name
                if not target.exists():  # an ADD'ed archive became a directory
                    target = stage
            _chown_tree(target, uid, gid)
            run_tool(
                ["umoci", "insert", "--image", image, "--tag", new_tag, *history, str(target),
                 dest],
                "insert",
            )  # fmt: skip
        finally:
            shutil.rmtree(work, ignore_errors=True)

    # -- layout helpers

    def _init_layout(self) -> None:
        if not (self.layout / "index.json").exists():
            self.layout.parent.mkdir(parents=True, exist_ok=True)
            run_tool(["umoci", "init", "--layout", str(self.layout)], "init the build cache")

    def _index(self) -> dict:
        return json.loads((self.layout / "index.json").read_text())

    def _has(self, tag: str) -> bool:
        return self._find(tag) is not None

    def _find(self, tag: str) -> dict | None:
        for m in self._index().get("manifests") or []:
            if (m.get("annotations") or {}).get(REF_NAME) == tag:
                return m
        return None

    def _descriptor(self, tag: str) -> dict:
        desc = self._find(tag)
        if desc is None:
            raise BuildError(f"{tag}: not in the build cache")
        return desc

    def _blob_path(self, digest: str) -> Path:
        algo, hexd = digest.split(":", 1)
        return self.layout / "blobs" / algo / hexd

    def _blob(self, digest: str) -> bytes:
        return self._blob_path(digest).read_bytes()

    def _names(self) -> dict[str, str]:
        path = self.cache / "names.json"
        return json.loads(path.read_text()) if path.exists() else {}

    def _remember(self, name: str, tag: str) -> None:
        names = self._names()
        names[name] = tag
        path = self.cache / "names.json"
        tmp = path.with_name("names.json.tmp")
        tmp.write_text(json.dumps(names, indent=1, sort_keys=True))
        tmp.replace(path)


class _State:
    """What earlier steps set that later steps read: workdir, ARG values, CMD seen."""

    def __init__(self) -> None:
        self.workdir = "/"
        self.args: dict[str, str] = {}
        self.cmd_set = False

    def absolute(self, path: str) -> str:
        return str(PurePosixPath(self.workdir, path)) if not path.startswith("/") else path

    def after(self, step: Instruction) -> None:
        if step.cmd == "WORKDIR":
            self.workdir = self.absolute(step.args[0])
        elif step.cmd == "ARG":
            self.args.update(a.split("=", 1) for a in step.args)  # type: ignore[arg-type]
        elif step.cmd == "CMD":
            self.cmd_set = True

    def config_flags(self, step: Instruction) -> list[str]:
        """``umoci config`` flags for a metadata instruction."""
        if step.cmd == "ENV":
            return [f for a in step.args for f in ("--config.env", a)]
        if step.cmd == "LABEL":
            return [f for a in step.args for f in ("--config.label", a)]
        if step.cmd == "EXPOSE":
            ports = [p if "/" in p else f"{p}/tcp" for p in step.args]
            return [f for p in ports for f in ("--config.exposedports", p)]
        if step.cmd == "USER":
            return ["--config.user", step.args[0]]
        if step.cmd == "WORKDIR":
            return ["--config.workingdir", self.absolute(step.args[0])]
        if step.cmd in ("CMD", "ENTRYPOINT"):
            field_name = step.cmd.lower()
            words = list(step.args) if step.exec_form else ["/bin/sh", "-c", step.args[0]]
            flags = ["--clear", f"config.{field_name}"]
            if step.cmd == "ENTRYPOINT" and not self.cmd_set:
                flags += ["--clear", "config.cmd"]  # Docker resets an inherited CMD
            return flags + [f for w in words for f in (f"--config.{field_name}", w)]
        raise BuildError(f"{step.cmd} is not a config instruction")


def _owner(chown: str | None) -> tuple[int, int]:
    if not chown:
        return 0, 0
    user, _, group = chown.partition(":")
    if not user.isdigit() or (group and not group.isdigit()):
        raise BuildError(f"--chown={chown}: only numeric uid[:gid] is supported")
    return int(user), int(group or user)


def _stage(src: Path, stage: Path, add: bool, context: Path, ignore: list[str]) -> None:
    """Lay ``src`` into ``stage``: a directory's contents, a file by name, and (ADD) a local
    tar archive extracted."""
    root = context.resolve()
    if src.is_dir():
        for p in sorted(src.rglob("*")):
            rel = str(p.relative_to(root))
            if _ignored(rel, ignore):
                continue
            out = stage / p.relative_to(src)
            if p.is_dir() and not p.is_symlink():
                out.mkdir(parents=True, exist_ok=True)
                out.chmod(stat.S_IMODE(p.stat().st_mode))
            else:
                out.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(p, out, follow_symlinks=False)
        return
    if add and tarfile.is_tarfile(src):
        with tarfile.open(src) as tar:
            tar.extractall(stage, filter="tar")
        return
    shutil.copy2(src, stage / src.name, follow_symlinks=False)


def _chown_tree(top: Path, uid: int, gid: int) -> None:
    paths = [top, *top.rglob("*")] if top.is_dir() else [top]
    for p in paths:
        os.lchown(p, uid, gid)

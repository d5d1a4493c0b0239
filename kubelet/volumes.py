"""Pod volumes on the node: set up, refresh, mount into containers, tear down.

A pod's volumes live under ``<root_dir>/pods/<uid>/volumes/<plugin>/<name>`` (the Kubernetes
kubelet's layout, e.g. ``kubernetes.io~configmap``); containers get CRI ``Mount`` entries
(host path → container path). Contracts:

- ``emptyDir``: a directory; ``medium: Memory`` is a tmpfs of ``sizeLimit`` (else the
  kernel's default size). On disk, ``sizeLimit`` is enforced by eviction
  (:mod:`kubelet.eviction`).
- ``hostPath``: the host path itself, after Kubernetes' ``type`` check (``DirectoryOrCreate``,
  ``Directory``, ``FileOrCreate``, ``File``, ``Socket``, ``CharDevice``, ``BlockDevice``).
- ``configMap``, ``secret``, ``downwardAPI``, ``projected``: files written by
  :func:`write_atomic`: the payload goes to a fresh ``..<timestamp>`` directory, the
  ``..data`` symlink is swapped to it with one ``rename`` and each top-level name is a symlink
  through ``..data``, so a reader sees the old or the new set of files, never a mix. Each
  :meth:`PodVolumes.setup` (every pass of the pod worker) rewrites a changed payload. ``items``
  select and rename keys, ``defaultMode``/``mode`` set file modes (0644 by default); these
  volumes are always mounted read-only, as Kubernetes does. A missing object or key fails the
  volume unless ``optional``. A projected ``serviceAccountToken`` is a TokenRequest bound to the
  pod (:mod:`kubelet.satoken`), rewritten in place once 80% of its lifetime has passed.
  ``secret`` and ``projected`` volumes live on a tmpfs of their own
  (:data:`TMPFS_PER_SOURCE` per source: room for two copies of the largest object during a
  swap), so secret data never reaches the node's disk; such a volume found on disk but not
  mounted (left by ``tug down``, or by an older agent) is deleted and made again on tmpfs.
- ``persistentVolumeClaim``: the claim must be Bound, and its PersistentVolume's required node
  affinity must admit this node (as the kubelet checks before mounting: a pod bound here
  directly, past the scheduler, does not use another node's local volume); its ``hostPath``
  (or ``local``) path is used (created if missing). Data outlives the pod.
- ``volumeMounts``: ``subPath`` (created inside the volume if missing; no ``..`` or absolute
  path), ``readOnly``, ``mountPropagation``.
- Failures raise :class:`VolumeError` carrying Kubernetes' ``FailedMount`` message.
- :meth:`PodVolumes.teardown` unmounts tmpfs volumes and removes the pod's directory; host
  paths and PersistentVolume data are never touched.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import time
import uuid
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from machinery import errors
from machinery.kinds import lookup
from machinery.nodeselector import any_term_matches, required_terms
from machinery.quantity import to_bytes

from .cri import api_pb2 as pb
from .env import Sources, field_ref, resource_ref
from .satoken import Token, token_key

Obj = dict[str, Any]
PVCS, PVS = lookup("persistentvolumeclaims"), lookup("persistentvolumes")
NODES = lookup("nodes")
DATA = "..data"
DEFAULT_MODE = 0o644
TMPFS_PER_SOURCE = 2 << 20  # bytes: twice the API's 1 MiB object limit
_IN_MEMORY = ("secret", "projected")  # plugins whose files Kubernetes keeps on tmpfs
_PROPAGATION = {
    "HostToContainer": pb.PROPAGATION_HOST_TO_CONTAINER,
    "Bidirectional": pb.PROPAGATION_BIDIRECTIONAL,
}
_PLUGINS = {
    "emptyDir": "kubernetes.io~empty-dir",
    "configMap": "kubernetes.io~configmap",
    "secret": "kubernetes.io~secret",
    "downwardAPI": "kubernetes.io~downward-api",
    "projected": "kubernetes.io~projected",
}


class VolumeError(Exception):
    """A volume could not be set up; ``str()`` is the FailedMount event message."""

    def __init__(self, volume: str, reason: str, step: str = "SetUp") -> None:
        super().__init__(f'MountVolume.{step} failed for volume "{volume}" : {reason}')
        self.volume = volume
        self.reason = reason


@dataclass(frozen=True)
class HostVolume:
    """Where a volume is on the host and whether it is always mounted read-only."""

    path: str
    read_only: bool = False


# ---------------------------------------------------------------------------------------------
# atomic payloads


def write_atomic(target: Path, payload: dict[str, tuple[bytes, int]]) -> bool:
    """Make ``target`` hold exactly ``payload`` (relative path → (content, mode)) through a
    ``..data`` symlink swap; returns whether anything changed."""
    target.mkdir(parents=True, exist_ok=True)
    data_link = target / DATA
    current = target / os.readlink(data_link) if data_link.is_symlink() else None
    if current is not None and _same(current, payload):
        return False
    stamp = time.strftime("..%Y_%m_%d_%H_%M_%S.", time.gmtime()) + uuid.uuid4().hex[:8]
    fresh = target / stamp
    fresh.mkdir(mode=0o755)
    for rel, (content, mode) in payload.items():
        path = fresh / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        path.chmod(mode)
    tmp = target / "..data_tmp"
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(stamp)
    os.rename(tmp, data_link)  # the atomic step
    tops = {rel.split("/", 1)[0] for rel in payload}
    for top in tops:
        link = target / top
        if not link.is_symlink():
            link.symlink_to(f"{DATA}/{top}")
    for entry in target.iterdir():
        if entry.name.startswith(".."):
            continue
        if entry.is_symlink() and entry.name not in tops:
            entry.unlink()
    if current is not None and current.name != stamp:
        shutil.rmtree(current, ignore_errors=True)
    return True


def _same(current: Path, payload: dict[str, tuple[bytes, int]]) -> bool:
    found = {str(p.relative_to(current)): p for p in current.rglob("*") if p.is_file()}
    if set(found) != set(payload):
        return False
    for rel, (content, mode) in payload.items():
        p = found[rel]
        if stat.S_IMODE(p.stat().st_mode) != mode or p.read_bytes() != content:
            return False
    return True


def _check_rel(volume: str, rel: str) -> str:
    parts = Path(rel).parts
    if not rel or rel.startswith("/") or ".." in parts:
        raise VolumeError(volume, f"invalid path {rel!r}: must be relative without '..'")
    return rel


def key_payload(
    volume: str,
    kind: str,
    name: str,
    data: dict[str, bytes] | None,
    items: list[Obj] | None,
    default_mode: int,
    optional: bool,
) -> dict[str, tuple[bytes, int]]:
    """The files of a configMap/secret (volume or projected source)."""
    if data is None:
        if optional:
            return {}
        raise VolumeError(volume, f'{kind} "{name}" not found')
    if not items:
        return {k: (v, default_mode) for k, v in data.items()}
    out = {}
    for item in items:
        key = item.get("key", "")
        if key not in data:
            if optional:
                continue
            raise VolumeError(volume, f"{kind} references non-existent config key: {key}")
        mode = item.get("mode")
        out[_check_rel(volume, item.get("path") or key)] = (
            data[key],
            int(mode) if mode is not None else default_mode,
        )
    return out


def downward_payload(
    volume: str,
    pod: Obj,
    items: list[Obj],
    default_mode: int,
    pod_ip: str,
    host_ip: str,
    cpu_millis: int,
    memory: int,
) -> dict[str, tuple[bytes, int]]:
    out = {}
    for item in items:
        rel = _check_rel(volume, item.get("path", ""))
        try:
            if item.get("fieldRef"):
                value = field_ref(pod, item["fieldRef"]["fieldPath"], pod_ip, host_ip)
            elif item.get("resourceFieldRef"):
                value = resource_ref(pod, "", item["resourceFieldRef"], cpu_millis, memory)
            else:
                continue
        except ValueError as err:
            raise VolumeError(volume, str(err)) from None
        mode = item.get("mode")
        out[rel] = (value.encode(), int(mode) if mode is not None else default_mode)
    return out


# ---------------------------------------------------------------------------------------------
# host paths


def check_host_path(volume: str, path: str, kind: str) -> None:
    """Kubernetes' hostPath ``type`` check (creating what ``*OrCreate`` asks for)."""
    p = Path(path)
    if kind == "DirectoryOrCreate":
        if not p.exists():
            p.mkdir(mode=0o755, parents=True)
            return
        kind = "Directory"
    if kind == "FileOrCreate":
        if not p.exists():
            try:
                p.touch(mode=0o644)
            except OSError as err:
                raise VolumeError(volume, f"hostPath type check failed: {err}") from None
            return
        kind = "File"
    checks = {
        "Directory": (p.is_dir, "is not a directory"),
        "File": (p.is_file, "is not a file"),
        "Socket": (p.is_socket, "is not a socket file"),
        "CharDevice": (p.is_char_device, "is not a character device"),
        "BlockDevice": (p.is_block_device, "is not a block device"),
    }
    if kind in checks:
        ok, what = checks[kind]
        if not ok():
            raise VolumeError(volume, f"hostPath type check failed: {path} {what}")


# ---------------------------------------------------------------------------------------------
# tmpfs


class Mounter:
    """tmpfs mounts through the ``mount`` command (root only)."""

    def mount_tmpfs(self, path: str, size: int | None, mode: int = 0o777) -> None:
        options = f"mode={mode:o}" + (f",size={size}" if size else "")
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", options, "tmpfs", path],
            check=True,
            capture_output=True,
        )

    def is_mounted(self, path: str) -> bool:
        return os.path.ismount(path)

    def unmount(self, path: str) -> None:
        subprocess.run(["umount", path], check=False, capture_output=True)


# ---------------------------------------------------------------------------------------------
# the pod's volumes


@dataclass(frozen=True)
class Claim:
    """A persistentVolumeClaim volume's claim and bound volume (``None`` when missing)."""

    pvc: Obj | None
    pv: Obj | None
    fits_node: bool = True  # the volume's node affinity admits this node


async def fetch_claims(client: Any, pod: Obj, node_name: str = "") -> dict[str, Claim]:
    """The claims (and their PersistentVolumes) the pod's volumes name, by claim name; with
    ``node_name``, each volume's required node affinity is checked against that Node."""
    namespace = (pod.get("metadata") or {}).get("namespace") or "default"
    out: dict[str, Claim] = {}
    for v in (pod.get("spec") or {}).get("volumes") or []:
        claim = (v.get("persistentVolumeClaim") or {}).get("claimName")
        if not claim or claim in out:
            continue
        try:
            pvc = await client.get(PVCS, claim, namespace)
        except errors.NotFound:
            out[claim] = Claim(None, None)
            continue
        pv = None
        volume_name = (pvc.get("spec") or {}).get("volumeName")
        if volume_name:
            try:
                pv = await client.get(PVS, volume_name)
            except errors.NotFound:
                pv = None
        out[claim] = Claim(pvc, pv)
    pinned = {
        name: terms
        for name, c in out.items()
        if c.pv is not None and (terms := required_terms(c.pv)) is not None
    }
    if pinned and node_name:
        try:
            node = await client.get(NODES, node_name)
        except errors.NotFound:
            node = {}
        labels = (node.get("metadata") or {}).get("labels") or {}
        for name, terms in pinned.items():
            if not any_term_matches(terms, labels, node_name):
                out[name] = replace(out[name], fits_node=False)
    return out


class PodVolumes:
    """One pod's volumes under ``<root_dir>/pods/<uid>``."""

    def __init__(self, root_dir: str, uid: str, mounter: Mounter | None = None) -> None:
        self.dir = Path(root_dir) / "pods" / uid
        self.mounter = mounter or Mounter()

    def setup(
        self,
        pod: Obj,
        sources: Sources,
        claims: dict[str, Claim],
        *,
        pod_ip: str = "",
        host_ip: str = "",
        cpu_millis: int = 1000,
        memory: int = 0,
    ) -> dict[str, HostVolume]:
        """Set up (or refresh) every volume; returns volume name → :class:`HostVolume`."""
        out: dict[str, HostVolume] = {}
        for v in (pod.get("spec") or {}).get("volumes") or []:
            name = v["name"]
            out[name] = self._one(pod, v, sources, claims, pod_ip, host_ip, cpu_millis, memory)
        return out

    def _plugin_dir(self, plugin: str, name: str) -> Path:
        return self.dir / "volumes" / _PLUGINS[plugin] / name

    def emptydir_path(self, name: str) -> Path:
        """Where ``emptyDir`` volume ``name`` is (whether or not it exists yet)."""
        return self._plugin_dir("emptyDir", name)

    def _one(
        self,
        pod: Obj,
        v: Obj,
        sources: Sources,
        claims: dict[str, Claim],
        pod_ip: str,
        host_ip: str,
        cpu_millis: int,
        memory: int,
    ) -> HostVolume:
        name = v["name"]
        if "emptyDir" in v:
            path = self._plugin_dir("emptyDir", name)
            path.mkdir(parents=True, exist_ok=True)
            spec = v.get("emptyDir") or {}
            if spec.get("medium") == "Memory" and not self.mounter.is_mounted(str(path)):
                size = to_bytes(spec["sizeLimit"]) if spec.get("sizeLimit") else None
                try:
                    self.mounter.mount_tmpfs(str(path), size)
                except (OSError, subprocess.CalledProcessError) as err:
                    raise VolumeError(name, f"mount tmpfs: {err}") from None
            else:
                path.chmod(0o777)
            return HostVolume(str(path))
        if "hostPath" in v:
            hp = v["hostPath"]
            check_host_path(name, hp["path"], str(hp.get("type") or ""))
            return HostVolume(hp["path"])
        if "persistentVolumeClaim" in v:
            return self._claim(name, v["persistentVolumeClaim"], claims)
        payload: dict[str, tuple[bytes, int]]
        plugin = next(
            (k for k in ("configMap", "secret", "downwardAPI", "projected") if k in v), ""
        )
        if not plugin:
            raise VolumeError(name, f"unsupported volume type {sorted(set(v) - {'name'})}")
        spec = v[plugin] or {}
        mode = int(spec.get("defaultMode", DEFAULT_MODE))
        if plugin == "configMap":
            cm = spec.get("name", "")
            payload = key_payload(
                name,
                "configmap",
                cm,
                sources.configmaps.get(cm),
                spec.get("items"),
                mode,
                bool(spec.get("optional")),
            )
        elif plugin == "secret":
            secret = spec.get("secretName", "")
            payload = key_payload(
                name,
                "secret",
                secret,
                sources.secrets.get(secret),
                spec.get("items"),
                mode,
                bool(spec.get("optional")),
            )
        elif plugin == "downwardAPI":
            payload = downward_payload(
                name, pod, spec.get("items") or [], mode, pod_ip, host_ip, cpu_millis, memory
            )
        else:
            payload = self._projected(
                name, pod, spec, sources, mode, pod_ip, host_ip, cpu_millis, memory
            )
        path = self._plugin_dir(plugin, name)
        if plugin in _IN_MEMORY and not self.mounter.is_mounted(str(path)):
            sources_count = len(spec.get("sources") or []) if plugin == "projected" else 1
            self._memory_dir(name, path, TMPFS_PER_SOURCE * max(1, sources_count))
        write_atomic(path, payload)
        return HostVolume(str(path), read_only=True)

    def _memory_dir(self, name: str, path: Path, size: int) -> None:
        """Make ``path`` a fresh tmpfs of ``size`` bytes (nothing left behind on failure)."""
        if path.exists():
            shutil.rmtree(path)
        path.mkdir(parents=True)
        try:
            self.mounter.mount_tmpfs(str(path), size, 0o755)
        except (OSError, subprocess.CalledProcessError) as err:
            path.rmdir()
            raise VolumeError(name, f"mount tmpfs: {err}") from None

    def _projected(
        self,
        name: str,
        pod: Obj,
        spec: Obj,
        sources: Sources,
        mode: int,
        pod_ip: str,
        host_ip: str,
        cpu_millis: int,
        memory: int,
    ) -> dict[str, tuple[bytes, int]]:
        payload: dict[str, tuple[bytes, int]] = {}
        for source in spec.get("sources") or []:
            if source.get("configMap") or source.get("secret"):
                kind = "configmap" if source.get("configMap") else "secret"
                s = source.get("configMap") or source["secret"]
                payload.update(
                    key_payload(
                        name,
                        kind,
                        s.get("name", ""),
                        sources.get(kind, s.get("name", "")),
                        s.get("items"),
                        mode,
                        bool(s.get("optional")),
                    )
                )
            elif source.get("downwardAPI"):
                items = source["downwardAPI"].get("items") or []
                payload.update(
                    downward_payload(name, pod, items, mode, pod_ip, host_ip, cpu_millis, memory)
                )
            elif source.get("serviceAccountToken"):
                s = source["serviceAccountToken"]
                got = sources.tokens.get(token_key(pod, s))
                if not isinstance(got, Token):
                    raise VolumeError(name, f"failed to fetch token: {got or 'not requested'}")
                payload[_check_rel(name, s.get("path", ""))] = (got.token.encode(), mode)
        return payload

    def _claim(self, name: str, ref: Obj, claims: dict[str, Claim]) -> HostVolume:
        claim_name = ref.get("claimName", "")
        claim = claims.get(claim_name) or Claim(None, None)
        if claim.pvc is None:
            raise VolumeError(name, f'persistentvolumeclaim "{claim_name}" not found')
        phase = (claim.pvc.get("status") or {}).get("phase")
        if phase != "Bound" or claim.pv is None:
            raise VolumeError(name, f'persistentvolumeclaim "{claim_name}" is not bound')
        if not claim.fits_node:
            pv_name = (claim.pv.get("metadata") or {}).get("name", "")
            reason = "no matching NodeSelectorTerms"
            raise VolumeError(pv_name, reason, step="NodeAffinity check")
        pv_spec = claim.pv.get("spec") or {}
        source = pv_spec.get("hostPath") or pv_spec.get("local") or {}
        if not source.get("path"):
            raise VolumeError(name, "the bound PersistentVolume has no hostPath or local path")
        check_host_path(name, source["path"], "DirectoryOrCreate")
        return HostVolume(source["path"], read_only=bool(ref.get("readOnly")))

    def teardown(self) -> None:
        """Unmount what was mounted and remove the pod's directory."""
        volumes = self.dir / "volumes"
        if volumes.is_dir():
            for plugin in volumes.iterdir():
                for v in plugin.iterdir() if plugin.is_dir() else ():
                    if self.mounter.is_mounted(str(v)):
                        self.mounter.unmount(str(v))
        shutil.rmtree(self.dir, ignore_errors=True)


def container_mounts(c: Obj, volumes: dict[str, HostVolume]) -> list[pb.Mount]:
    """The CRI mounts of container ``c`` (``ValueError`` for a mount of an unknown volume or a
    bad ``subPath``)."""
    out = []
    for vm in c.get("volumeMounts") or []:
        volume = volumes.get(vm.get("name", ""))
        if volume is None:
            raise ValueError(f"cannot find volume {vm.get('name')!r} to mount into container")
        host = volume.path
        sub = str(vm.get("subPath") or "")
        if sub:
            parts = Path(sub).parts
            if sub.startswith("/") or ".." in parts:
                raise ValueError(f"subPath {sub!r} must be a relative path without '..'")
            host = os.path.join(volume.path, sub)
            if not os.path.lexists(host):
                os.makedirs(host, mode=0o755, exist_ok=True)
        out.append(
            pb.Mount(
                container_path=vm["mountPath"],
                host_path=host,
                readonly=bool(vm.get("readOnly")) or volume.read_only,
                propagation=_PROPAGATION.get(str(vm.get("mountPropagation") or ""), 0),  # type: ignore[arg-type]
            )
        )
    return out

"""Container probes: liveness, readiness and startup, as the Kubernetes kubelet runs them.

:class:`ProbeState` is the pure state machine of one probe of one container instance;
:class:`PodProbes` runs the due probes of a pod in one pass of its worker and reports what the
worker must do. Contracts (Kubernetes' ``prober/worker.go``):

- Defaults: ``periodSeconds`` 10, ``timeoutSeconds`` 1, ``successThreshold`` 1,
  ``failureThreshold`` 3, ``initialDelaySeconds`` 0 (counted from the container's start).
- Initial results: readiness *failure* (not ready until a probe succeeds), liveness *success*,
  startup *failure* (not started). A result flips only after ``successThreshold`` consecutive
  successes or ``failureThreshold`` consecutive failures.
- While a startup probe has not succeeded, liveness and readiness are not run (the container
  is not ready); once it has, the startup probe stops.
- A liveness or startup failure yields a kill (``Container X failed liveness probe, will be
  restarted``) and holds that probe until the container instance changes. Every failed probe
  run records a Warning ``Unhealthy`` event (``Liveness probe failed: <output>``).
- Handlers: ``exec`` through CRI ExecSync (exit 0 succeeds); ``httpGet`` to ``host`` or the pod
  IP, port by number or by the container's port name (200–399 succeeds; ``HTTPS`` does not
  verify the certificate; ``httpHeaders`` replace the defaults of the same name); ``tcpSocket`` (a
  connection succeeds). Every run is bounded by ``timeoutSeconds``; a runtime error (the
  container went away) is *unknown* and changes nothing.
- State is keyed by container id: a restarted container starts over from the initial results.
"""

from __future__ import annotations

import asyncio
import math
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from .cri.errors import CriError
from .observe import RUNNING, ContainerRecord, PodRuntime

Obj = dict[str, Any]

LIVENESS, READINESS, STARTUP = "liveness", "readiness", "startup"
KINDS = (STARTUP, LIVENESS, READINESS)
SUCCESS, FAILURE, UNKNOWN = "success", "failure", "unknown"
_INITIAL = {LIVENESS: True, READINESS: False, STARTUP: False}
_FIELDS = {LIVENESS: "livenessProbe", READINESS: "readinessProbe", STARTUP: "startupProbe"}
_DEFAULT_HEADERS = (("User-Agent", "kube-probe/1.33"), ("Accept", "*/*"))


@dataclass(frozen=True)
class ProbeSpec:
    """A container's probe with the defaults applied."""

    kind: str
    handler: Obj
    initial_delay: float = 0.0
    period: float = 10.0
    timeout: float = 1.0
    success_threshold: int = 1
    failure_threshold: int = 3

    @classmethod
    def parse(cls, kind: str, probe: Obj) -> ProbeSpec:
        def num(key: str, default: float) -> float:
            value = probe.get(key)
            return float(value) if value else default

        success = int(num("successThreshold", 1))
        return cls(
            kind=kind,
            handler={k: v for k, v in probe.items() if k in ("exec", "httpGet", "tcpSocket")},
            initial_delay=num("initialDelaySeconds", 0.0),
            period=num("periodSeconds", 10.0),
            timeout=num("timeoutSeconds", 1.0),
            success_threshold=success if kind == READINESS else 1,
            failure_threshold=int(num("failureThreshold", 3)),
        )


def container_probes(c: Obj) -> list[ProbeSpec]:
    return [ProbeSpec.parse(kind, c[_FIELDS[kind]]) for kind in KINDS if c.get(_FIELDS[kind])]


@dataclass
class ProbeState:
    """One probe of one container instance (pure; times are epoch seconds)."""

    spec: ProbeSpec
    started_at: float
    ok: bool = field(init=False)
    last_run: float | None = None
    last_result: str = ""
    run_length: int = 0
    on_hold: bool = False

    def __post_init__(self) -> None:
        self.ok = _INITIAL[self.spec.kind]

    def next_run(self) -> float:
        """When the probe is due next (epoch seconds)."""
        first = self.started_at + self.spec.initial_delay
        if self.last_run is None:
            return first
        return max(first, self.last_run + self.spec.period)

    def due(self, now: float) -> bool:
        return not self.on_hold and now >= self.next_run()

    def record(self, result: str, now: float) -> bool:
        """Count one run's result; returns whether :attr:`ok` changed."""
        self.last_run = now
        if result == UNKNOWN:
            return False
        if result == self.last_result:
            self.run_length += 1
        else:
            self.last_result, self.run_length = result, 1
        threshold = (
            self.spec.success_threshold if result == SUCCESS else self.spec.failure_threshold
        )
        if self.run_length < threshold:
            return False
        ok = result == SUCCESS
        if not ok and self.spec.kind in (LIVENESS, STARTUP):
            self.on_hold = True  # until the container is restarted
        changed, self.ok = ok != self.ok, ok
        return changed


Runner = Callable[[ProbeSpec, Obj, ContainerRecord, str], Awaitable[tuple[str, str]]]


class HandlerRunner:
    """Runs probe handlers against a CRI runtime and the pod network."""

    def __init__(self, runtime: Any) -> None:
        self.runtime = runtime

    async def __call__(
        self, spec: ProbeSpec, c: Obj, record: ContainerRecord, pod_ip: str
    ) -> tuple[str, str]:
        h = spec.handler
        try:
            if "exec" in h:
                return await self._exec(spec, record, h["exec"].get("command") or [])
            if "httpGet" in h:
                return await self._http(spec, c, h["httpGet"], pod_ip)
            if "tcpSocket" in h:
                return await self._tcp(spec, c, h["tcpSocket"], pod_ip)
        except ValueError as err:
            return FAILURE, str(err)
        return UNKNOWN, "probe has no handler"

    async def _exec(
        self, spec: ProbeSpec, record: ContainerRecord, command: list[str]
    ) -> tuple[str, str]:
        timeout = max(1, math.ceil(spec.timeout))
        try:
            async with asyncio.timeout(timeout + 1):
                result = await self.runtime.exec_sync(record.id, list(command), timeout=timeout)
        except TimeoutError:
            return FAILURE, f'command "{" ".join(command)}" timed out'
        except CriError as err:
            if "timeout" in str(err).lower() or "deadline" in str(err).lower():
                return FAILURE, f'command "{" ".join(command)}" timed out'
            return UNKNOWN, str(err)
        output = (result.stdout + result.stderr).decode(errors="replace")
        return (SUCCESS if result.exit_code == 0 else FAILURE), output

    async def _http(self, spec: ProbeSpec, c: Obj, get: Obj, pod_ip: str) -> tuple[str, str]:
        host = get.get("host") or pod_ip
        port = resolve_port(c, get.get("port"))
        scheme = str(get.get("scheme") or "HTTP").lower()
        path = str(get.get("path") or "/")
        if not path.startswith("/"):
            path = "/" + path
        url = f"{scheme}://{_host(host)}:{port}{path}"
        headers = probe_headers(get.get("httpHeaders") or [])
        try:
            async with httpx.AsyncClient(timeout=spec.timeout, verify=False) as http:
                response = await http.get(url, headers=headers)
        except httpx.TimeoutException:
            return FAILURE, (
                f'Get "{url}": context deadline exceeded '
                "(Client.Timeout exceeded while awaiting headers)"
            )
        except (httpx.HTTPError, OSError) as err:
            return FAILURE, f'Get "{url}": {_tls_error(err) or _dial_error(host, port, err)}'
        if 200 <= response.status_code < 400:
            return SUCCESS, ""
        return FAILURE, f"HTTP probe failed with statuscode: {response.status_code}"

    async def _tcp(self, spec: ProbeSpec, c: Obj, sock: Obj, pod_ip: str) -> tuple[str, str]:
        host = sock.get("host") or pod_ip
        port = resolve_port(c, sock.get("port"))
        try:
            async with asyncio.timeout(spec.timeout):
                _, writer = await asyncio.open_connection(host, port)
        except TimeoutError:
            return FAILURE, f"dial tcp {_host(host)}:{port}: i/o timeout"
        except OSError as err:
            return FAILURE, _dial_error(host, port, err)
        writer.close()
        return SUCCESS, ""


def probe_headers(given: list[Obj]) -> httpx.Headers:
    """The request headers of an httpGet probe: its ``httpHeaders`` (names case-insensitive,
    repeats all sent), and ``User-Agent``/``Accept`` defaults where it sets none."""
    pairs = [(str(h.get("name") or ""), str(h.get("value") or "")) for h in given]
    named = {name.lower() for name, _ in pairs}
    defaults = [(k, v) for k, v in _DEFAULT_HEADERS if k.lower() not in named]
    return httpx.Headers(defaults + pairs)


def _host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _causes(err: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    cause: BaseException | None = err
    while cause is not None and len(chain) < 10:  # httpx hides the OS error behind its own
        chain.append(cause)
        cause = cause.__cause__ or cause.__context__
    return chain


def _tls_error(err: BaseException) -> str:
    """Go's words for a failed TLS handshake ("" when it was not one)."""
    for cause in _causes(err):
        if isinstance(cause, ssl.SSLError):
            if cause.reason == "WRONG_VERSION_NUMBER":  # plain HTTP answered the handshake
                return "http: server gave HTTP response to HTTPS client"
            return f"tls: {(cause.reason or str(cause)).lower().replace('_', ' ')}"
    return ""


def _dial_error(host: str, port: int, err: BaseException) -> str:
    text = str(err) or type(err).__name__
    for cause in _causes(err):
        if isinstance(cause, ConnectionRefusedError) or "refused" in str(cause).lower():
            text = "connect: connection refused"
            break
    return f"dial tcp {_host(host)}:{port}: {text}"


def resolve_port(c: Obj, port: Any) -> int:
    """A probe's port: a number, or the name of one of the container's ports."""
    if isinstance(port, int):
        return port
    text = str(port or "")
    if text.isdigit():
        return int(text)
    for p in c.get("ports") or []:
        if p.get("name") == text:
            return int(p["containerPort"])
    raise ValueError(f"unable to find port {text!r} in container {c.get('name')}")


@dataclass
class ProbeReport:
    """What one pass of probing found."""

    ready: dict[str, bool] = field(default_factory=dict)  # running containers only
    started: dict[str, bool] = field(default_factory=dict)
    kill: list[tuple[ContainerRecord, str]] = field(default_factory=list)
    events: list[tuple[str, str, str]] = field(default_factory=list)  # (type, reason, message)
    wake_after: float | None = None

    def wake(self, seconds: float) -> None:
        seconds = max(0.0, seconds)
        if self.wake_after is None or seconds < self.wake_after:
            self.wake_after = seconds


class PodProbes:
    """The probe states of one pod's containers; :meth:`sync` runs what is due."""

    def __init__(self, runner: Runner, clock: Callable[[], float]) -> None:
        self.runner = runner
        self.clock = clock
        self.states: dict[tuple[str, str], ProbeState] = {}  # (container id, kind)

    async def sync(self, pod: Obj, rt: PodRuntime, pod_ip: str) -> ProbeReport:
        """Run every due probe of the pod's running app containers (concurrently)."""
        report = ProbeReport()
        now = self.clock()
        live: set[tuple[str, str]] = set()
        due: list[tuple[Obj, ContainerRecord, ProbeState]] = []
        containers = (pod.get("spec") or {}).get("containers") or []
        for c in containers:
            record = rt.latest(c["name"])
            if record is None or record.state != RUNNING:
                continue
            specs = container_probes(c)
            for spec in specs:
                key = (record.id, spec.kind)
                live.add(key)
                state = self.states.get(key)
                if state is None:
                    state = self.states[key] = ProbeState(spec, record.started_at or now)
                if state.spec != spec:
                    state.spec = spec
            startup = self.states.get((record.id, STARTUP))
            started = startup is None or startup.ok
            for spec in specs:
                state = self.states[(record.id, spec.kind)]
                if spec.kind == STARTUP and state.ok:
                    continue
                if spec.kind != STARTUP and not started:
                    continue
                if state.due(now):
                    due.append((c, record, state))
        self.states = {k: v for k, v in self.states.items() if k in live}
        results = await asyncio.gather(
            *(self.runner(state.spec, c, record, pod_ip) for c, record, state in due)
        )
        for (c, record, state), (result, output) in zip(due, results, strict=True):
            if result == FAILURE:
                what = state.spec.kind.capitalize()
                report.events.append(("Warning", "Unhealthy", f"{what} probe failed: {output}"))
            changed = state.record(result, now)
            if changed and not state.ok and state.spec.kind in (LIVENESS, STARTUP):
                report.kill.append(
                    (
                        record,
                        f"Container {c['name']} failed {state.spec.kind} probe, will be restarted",
                    )
                )
        for c in containers:
            record = rt.latest(c["name"])
            if record is None or record.state != RUNNING:
                continue
            startup = self.states.get((record.id, STARTUP))
            readiness = self.states.get((record.id, READINESS))
            started = startup is None or startup.ok
            report.started[c["name"]] = started
            report.ready[c["name"]] = started and (readiness is None or readiness.ok)
        for (cid, kind), state in self.states.items():
            startup = self.states.get((cid, STARTUP))
            eligible = not state.ok if kind == STARTUP else startup is None or startup.ok
            if eligible and not state.on_hold:
                report.wake(state.next_run() - now)
        return report

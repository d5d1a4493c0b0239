"""Probes: the pure state machine (fake clock), handlers on loopback, and the pod worker acting
on results (fake runtime over gRPC, fake API server)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from dataclasses import replace

import grpc
import pytest

from kubelet.cri.errors import CriError
from kubelet.observe import RUNNING, ContainerRecord, PodRuntime
from kubelet.podworker import PodWorker
from kubelet.probes import (
    FAILURE,
    LIVENESS,
    READINESS,
    STARTUP,
    SUCCESS,
    UNKNOWN,
    HandlerRunner,
    PodProbes,
    ProbeSpec,
    ProbeState,
    resolve_port,
)
from machinery.pki import Pki
from tests.unit.test_kubelet_worker import Clock, Env, env, settle, sleeper  # noqa: F401

T0 = 1_700_000_000.0


@pytest.mark.parametrize(
    ("kind", "success", "failure", "results", "expected"),
    [
        (READINESS, 1, 3, [], [False]),
        (READINESS, 1, 3, [SUCCESS], [True]),
        (READINESS, 2, 3, [SUCCESS, SUCCESS], [False, True]),
        (READINESS, 1, 2, [SUCCESS, FAILURE, FAILURE], [True, True, False]),
        (READINESS, 1, 3, [SUCCESS, FAILURE, SUCCESS, FAILURE], [True, True, True, True]),
        (READINESS, 1, 1, [SUCCESS, UNKNOWN, FAILURE], [True, True, False]),
        (LIVENESS, 1, 3, [FAILURE, FAILURE], [True, True]),
        (LIVENESS, 1, 3, [FAILURE, FAILURE, FAILURE], [True, True, False]),
        (STARTUP, 1, 3, [FAILURE, SUCCESS], [False, True]),
    ],
    ids=[
        "readiness-starts-unready",
        "readiness-one-success",
        "readiness-success-threshold",
        "readiness-failure-threshold",
        "alternating-never-flips",
        "unknown-changes-nothing",
        "liveness-below-threshold",
        "liveness-fails-at-threshold",
        "startup-succeeds",
    ],
)
def test_thresholds(
    kind: str, success: int, failure: int, results: list[str], expected: list[bool]
) -> None:
    spec = ProbeSpec(kind, {}, success_threshold=success, failure_threshold=failure)
    state = ProbeState(spec, T0)
    seen = [state.ok] if not results else []
    for i, result in enumerate(results):
        state.record(result, T0 + i)
        seen.append(state.ok)
    assert seen == expected


def test_schedule_honours_initial_delay_and_period_and_holds_after_liveness_failure() -> None:
    spec = ProbeSpec(LIVENESS, {}, initial_delay=5, period=10, failure_threshold=1)
    state = ProbeState(spec, T0)
    assert not state.due(T0 + 4.9)
    assert state.due(T0 + 5)
    state.record(SUCCESS, T0 + 5)
    assert not state.due(T0 + 14.9) and state.due(T0 + 15)
    assert state.record(FAILURE, T0 + 15) and not state.ok
    assert state.on_hold and not state.due(T0 + 100)


def test_parse_applies_defaults_and_forces_liveness_success_threshold() -> None:
    spec = ProbeSpec.parse(LIVENESS, {"exec": {"command": ["true"]}, "successThreshold": 3})
    assert (spec.period, spec.timeout, spec.failure_threshold) == (10.0, 1.0, 3)
    assert spec.success_threshold == 1
    assert ProbeSpec.parse(READINESS, {"successThreshold": 3}).success_threshold == 3


@pytest.mark.parametrize(
    ("port", "expected"),
    [(8080, 8080), ("8080", 8080), ("http", 80)],
    ids=["int", "numeric-string", "named"],
)
def test_resolve_port(port: object, expected: int) -> None:
    c = {"name": "web", "ports": [{"name": "http", "containerPort": 80}]}
    assert resolve_port(c, port) == expected


def test_unknown_named_port_is_an_error() -> None:
    with pytest.raises(ValueError, match="unable to find port"):
        resolve_port({"name": "web"}, "metrics")


class ScriptedRunner:
    """A probe runner answering from a per-kind script (the last answer repeats)."""

    def __init__(self, script: dict[str, list[str]]) -> None:
        self.script = script
        self.calls: list[str] = []

    async def __call__(self, spec, c, record, pod_ip):
        self.calls.append(spec.kind)
        answers = self.script[spec.kind]
        result = answers.pop(0) if len(answers) > 1 else answers[0]
        return result, "" if result == SUCCESS else "boom"


def _runtime(started_at: float) -> PodRuntime:
    record = ContainerRecord("c1", "main", "s1", 0, RUNNING, started_at=started_at)
    return PodRuntime("uid", containers={"main": [record]})


def _pod(**probes: dict) -> dict:
    return {"spec": {"containers": [{"name": "main", **probes}]}}


async def test_startup_probe_holds_back_liveness_and_readiness() -> None:
    clock = Clock(T0)
    runner = ScriptedRunner(
        {STARTUP: [FAILURE, SUCCESS], LIVENESS: [SUCCESS], READINESS: [SUCCESS]}
    )
    probes = PodProbes(runner, clock)
    pod = _pod(
        startupProbe={"exec": {}, "periodSeconds": 1, "failureThreshold": 5},
        livenessProbe={"exec": {}, "periodSeconds": 3},
        readinessProbe={"exec": {}, "periodSeconds": 2},
    )
    rt = _runtime(T0)
    report = await probes.sync(pod, rt, "10.0.0.2")
    assert runner.calls == [STARTUP]
    assert report.ready == {"main": False} and report.started == {"main": False}
    assert report.wake_after == 1.0
    assert report.events == [("Warning", "Unhealthy", "Startup probe failed: boom")]

    clock.step(1)
    report = await probes.sync(pod, rt, "10.0.0.2")
    assert runner.calls == [STARTUP, STARTUP]
    assert report.started == {"main": True} and report.ready == {"main": False}
    assert report.wake_after == 0.0  # liveness and readiness are due now

    report = await probes.sync(pod, rt, "10.0.0.2")
    assert sorted(runner.calls[2:]) == [LIVENESS, READINESS]
    assert report.ready == {"main": True}
    assert report.wake_after == 2.0


async def test_liveness_failure_asks_for_a_kill_once() -> None:
    clock = Clock(T0)
    runner = ScriptedRunner({LIVENESS: [FAILURE]})
    probes = PodProbes(runner, clock)
    pod = _pod(livenessProbe={"exec": {}, "periodSeconds": 1, "failureThreshold": 2})
    rt = _runtime(T0)
    kills = []
    for _ in range(4):
        report = await probes.sync(pod, rt, "")
        kills += [why for _, why in report.kill]
        clock.step(1)
    assert kills == ["Container main failed liveness probe, will be restarted"]
    assert runner.calls == [LIVENESS, LIVENESS]  # held after the failure

    restarted = PodRuntime(
        "uid",
        containers={"main": [replace(rt.containers["main"][0], id="c2", started_at=clock())]},
    )
    report = await probes.sync(pod, restarted, "")
    assert len(runner.calls) == 3 and not report.kill  # a new instance starts over


# -- handlers on loopback ---------------------------------------------------------------------


async def _serve(handler):
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def test_http_handler_status_codes_and_refused_port() -> None:
    codes = iter([200, 500])

    async def http(reader, writer):
        await reader.readuntil(b"\r\n\r\n")
        code = next(codes)
        writer.write(f"HTTP/1.1 {code} X\r\nContent-Length: 0\r\n\r\n".encode())
        await writer.drain()
        writer.close()

    server, port = await _serve(http)
    runner = HandlerRunner(runtime=None)
    spec = ProbeSpec(READINESS, {"httpGet": {"path": "/healthz", "port": "web"}})
    c = {"name": "main", "ports": [{"name": "web", "containerPort": port}]}
    async with server:
        assert (await runner(spec, c, None, "127.0.0.1"))[0] == SUCCESS
        result, message = await runner(spec, c, None, "127.0.0.1")
        assert (result, message) == (FAILURE, "HTTP probe failed with statuscode: 500")
    server.close()
    await server.wait_closed()
    result, message = await runner(spec, c, None, "127.0.0.1")
    assert result == FAILURE
    assert message == (
        f'Get "http://127.0.0.1:{port}/healthz": dial tcp 127.0.0.1:{port}: '
        "connect: connection refused"
    )


async def test_tcp_handler() -> None:
    async def accept(reader, writer):
        writer.close()

    server, port = await _serve(accept)
    runner = HandlerRunner(runtime=None)
    spec = ProbeSpec(LIVENESS, {"tcpSocket": {"port": port}})
    async with server:
        assert (await runner(spec, {"name": "m"}, None, "127.0.0.1"))[0] == SUCCESS
    server.close()
    await server.wait_closed()
    result, message = await runner(spec, {"name": "m"}, None, "127.0.0.1")
    assert (result, message) == (
        FAILURE,
        f"dial tcp 127.0.0.1:{port}: connect: connection refused",
    )


# -- the pod worker ---------------------------------------------------------------------------


class Events:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str, str]] = []

    def event(self, obj, type, reason, message):
        self.seen.append((type, reason, message))


async def test_readiness_drives_ready_conditions(env: Env) -> None:  # noqa: F811
    healthy = {"ok": False}
    env.fake.exec_handler = lambda cid, argv: (0 if healthy["ok"] else 1, b"", b"not yet")
    probe = {"exec": {"command": ["check"]}, "periodSeconds": 5}
    pod = env.seed("ready", [sleeper(readinessProbe=probe)])
    worker = PodWorker(env.context(), pod)
    await worker.sync()  # started, not probed yet: not ready either
    assert "running" in env.container("ready", "main")["state"]
    assert env.container("ready", "main")["ready"] is False
    wake = await settle(worker, env)
    assert wake == 5.0
    status = env.status("ready")
    conditions = {c["type"]: c["status"] for c in status["conditions"]}
    assert conditions["Ready"] == conditions["ContainersReady"] == "False"
    assert env.container("ready", "main")["ready"] is False
    assert status["phase"] == "Running"

    healthy["ok"] = True
    env.clock.step(5)
    await settle(worker, env)
    conditions = {c["type"]: c["status"] for c in env.status("ready")["conditions"]}
    assert conditions["Ready"] == conditions["ContainersReady"] == "True"
    assert env.container("ready", "main")["ready"] is True


async def test_liveness_failure_restarts_the_container_with_events(env: Env) -> None:  # noqa: F811
    env.fake.exec_handler = lambda cid, argv: (1, b"", b"sick")
    probe = {"exec": {"command": ["check"]}, "periodSeconds": 1, "failureThreshold": 2}
    pod = env.seed("live", [sleeper(livenessProbe=probe)])
    events = Events()
    ctx = env.context()
    ctx.recorder = events
    worker = PodWorker(ctx, pod)
    await settle(worker, env)
    first = env.running_ids()
    for _ in range(2):
        env.clock.step(1)
        await settle(worker, env)
    assert env.fake.calls["StopContainer"] >= 1
    assert env.container("live", "main")["restartCount"] == 1
    assert env.running_ids() != first
    reasons = [(r, m) for _, r, m in events.seen if r in ("Unhealthy", "Killing")]
    assert reasons[:3] == [
        ("Unhealthy", "Liveness probe failed: sick"),
        ("Unhealthy", "Liveness probe failed: sick"),
        ("Killing", "Container main failed liveness probe, will be restarted"),
    ]


# -- handler fields: headers, scheme, timeout, successThreshold ------------------------------


class HttpServer:
    """A loopback HTTP/1.1 server answering each request with the next status code (the last
    repeats); records request heads. ``hold`` makes it read a request and never answer."""

    def __init__(self, *codes: int, hold: bool = False) -> None:
        self.codes = list(codes) or [200]
        self.hold = hold
        self.heads: list[list[str]] = []
        self.release = asyncio.Event()

    async def __call__(self, reader, writer) -> None:
        first = await reader.readexactly(1)
        if not first.isalpha():  # a TLS handshake: answer it as plain HTTP servers do
            writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()
            writer.close()
            return
        head = (first + await reader.readuntil(b"\r\n\r\n")).decode().split("\r\n")
        self.heads.append([line for line in head if line])
        if self.hold:
            await self.release.wait()
        code = self.codes.pop(0) if len(self.codes) > 1 else self.codes[0]
        writer.write(f"HTTP/1.1 {code} X\r\nContent-Length: 0\r\n\r\n".encode())
        await writer.drain()
        writer.close()

    def header(self, index: int, name: str) -> list[str]:
        prefix = name.lower() + ":"
        return [
            line.split(":", 1)[1].strip()
            for line in self.heads[index][1:]
            if line.lower().startswith(prefix)
        ]


def _tls_context(tmp_path) -> ssl.SSLContext:
    """A serving context with a certificate from a CA the prober does not know."""
    pki = Pki(tmp_path / "pki").ensure()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(pki.serving.cert, pki.serving.key)
    return context


def _http_spec(port: int, kind: str = READINESS, **get) -> ProbeSpec:
    return ProbeSpec(kind, {"httpGet": {"path": "/healthz", "port": port, **get}})


async def test_http_probe_sends_its_headers() -> None:
    handler = HttpServer(200)
    server, port = await _serve(handler)
    headers = [
        {"name": "X-Probe", "value": "yes"},
        {"name": "user-agent", "value": "custom/1"},
        {"name": "Accept", "value": "application/json"},
    ]
    async with server:
        runner = HandlerRunner(runtime=None)
        plain = await runner(_http_spec(port), {"name": "m"}, None, "127.0.0.1")
        custom = await runner(
            _http_spec(port, httpHeaders=headers), {"name": "m"}, None, "127.0.0.1"
        )
    assert plain[0] == custom[0] == SUCCESS
    assert handler.heads[0][0] == "GET /healthz HTTP/1.1"
    assert handler.header(0, "User-Agent") == ["kube-probe/1.33"]
    assert handler.header(0, "Accept") == ["*/*"]
    assert handler.header(1, "X-Probe") == ["yes"]
    assert handler.header(1, "User-Agent") == ["custom/1"]  # a probe's header replaces ours
    assert handler.header(1, "Accept") == ["application/json"]


async def test_https_probe_skips_certificate_verification(tmp_path) -> None:
    handler = HttpServer(200)
    server = await asyncio.start_server(handler, "127.0.0.1", 0, ssl=_tls_context(tmp_path))
    port = server.sockets[0].getsockname()[1]
    runner = HandlerRunner(runtime=None)
    async with server:
        result = await runner(_http_spec(port, scheme="HTTPS"), {"name": "m"}, None, "127.0.0.1")
        assert result == (SUCCESS, "")
        plain, message = await runner(_http_spec(port), {"name": "m"}, None, "127.0.0.1")
        assert plain == FAILURE, "plain HTTP to a TLS port must fail"
        assert message.startswith(f'Get "http://127.0.0.1:{port}/healthz": ')
    assert handler.heads[0][0] == "GET /healthz HTTP/1.1"


async def test_https_probe_to_a_plain_http_server_fails() -> None:
    server, port = await _serve(HttpServer(200))
    runner = HandlerRunner(runtime=None)
    async with server:
        result = await runner(_http_spec(port, scheme="HTTPS"), {"name": "m"}, None, "127.0.0.1")
    assert result == (
        FAILURE,
        f'Get "https://127.0.0.1:{port}/healthz": http: server gave HTTP response to HTTPS client',
    )


async def test_http_probe_slower_than_its_timeout_fails() -> None:
    handler = HttpServer(200, hold=True)
    server, port = await _serve(handler)
    runner = HandlerRunner(runtime=None)
    spec = replace(_http_spec(port), timeout=0.2)
    async with server:
        result = await runner(spec, {"name": "m"}, None, "127.0.0.1")
        handler.release.set()
    assert result == (
        FAILURE,
        f'Get "http://127.0.0.1:{port}/healthz": context deadline exceeded '
        "(Client.Timeout exceeded while awaiting headers)",
    )
    assert len(handler.heads) == 1  # the request was sent, the answer came too late


async def test_tcp_probe_slower_than_its_timeout_fails() -> None:
    # A listener that never accepts: once its accept queue is full, the kernel drops further
    # SYNs, so the next connection attempt hangs until the probe gives up.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        filling = []
        for _ in range(2):
            s = socket.socket()
            s.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                s.connect(("127.0.0.1", port))
            filling.append(s)
        try:
            spec = ProbeSpec(LIVENESS, {"tcpSocket": {"port": port}}, timeout=0.3)
            result = await HandlerRunner(runtime=None)(spec, {"name": "m"}, None, "127.0.0.1")
        finally:
            for s in filling:
                s.close()
    assert result == (FAILURE, f"dial tcp 127.0.0.1:{port}: i/o timeout")


class SlowRuntime:
    """ExecSync as containerd answers a command that outlives the request's timeout."""

    def __init__(self) -> None:
        self.timeouts: list[int] = []

    async def exec_sync(self, container_id, cmd, timeout=0):
        self.timeouts.append(timeout)
        raise CriError(
            "ExecSync",
            grpc.StatusCode.UNKNOWN,
            f"failed to exec in container: timeout {timeout}s exceeded: context deadline exceeded",
        )


async def test_exec_probe_slower_than_its_timeout_fails() -> None:
    runtime = SlowRuntime()
    spec = ProbeSpec(LIVENESS, {"exec": {"command": ["sleep", "5"]}}, timeout=2)
    record = ContainerRecord("c1", "main", "s1", 0, RUNNING)
    result = await HandlerRunner(runtime)(spec, {"name": "main"}, record, "")
    assert result == (FAILURE, 'command "sleep 5" timed out')
    assert runtime.timeouts == [2]  # the runtime is told the probe's timeoutSeconds


async def test_readiness_success_threshold_over_http() -> None:
    clock = Clock(T0)
    handler = HttpServer(200, 500, 200, 200, 200)
    server, port = await _serve(handler)
    probes = PodProbes(HandlerRunner(runtime=None), clock)
    probe = {
        "httpGet": {"path": "/healthz", "port": port},
        "periodSeconds": 1,
        "successThreshold": 2,
        "failureThreshold": 1,
    }
    pod = _pod(readinessProbe=probe)
    rt = _runtime(T0)
    ready = []
    async with server:
        for _ in range(5):
            report = await probes.sync(pod, rt, "127.0.0.1")
            ready.append(report.ready["main"])
            clock.step(1)
    # 200 (1 of 2), 500 (a failure resets the run), 200 (1 of 2), 200 (ready), 200
    assert ready == [False, False, False, True, True]
    assert len(handler.heads) == 5

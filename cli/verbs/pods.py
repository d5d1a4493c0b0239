"""``tug logs|exec|top|autoscale``: the client side of COMPAT.md section 7 (log streaming,
WebSocket exec with the ``v5.channel.k8s.io`` protocol, metrics.k8s.io reads, HPA creation).

``logs`` follows kubectl: with ``-l`` every matching pod (its default container, or all with
``--all-containers``) and the last 10 lines of each unless ``--tail`` says otherwise; one
stream after the other, except ``-f`` over several streams, which follows them all at once
(at most ``--max-log-requests``, default 5) and ends at the first error. ``--prefix`` starts
each line with ``[pod/NAME/CONTAINER] ``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from cli import api
from cli.config import Session
from cli.errors import CliError
from cli.output import pad_columns
from cli.verbs.modify import ref_text
from machinery import errors, kinds
from machinery.channels import CLOSE, RESIZE, STATUS, STDERR, STDIN, STDOUT
from machinery.client import error_from_response
from machinery.printers import format_label_selector
from machinery.quantity import cpu_millis, to_bytes

DEFAULT_CONTAINER = "kubectl.kubernetes.io/default-container"


def register(sub: Any) -> None:
    p = sub.add_parser("logs", help="print the logs of a container")
    p.add_argument("target", nargs="?")
    p.add_argument("container_arg", nargs="?")
    p.add_argument("-c", "--container")
    p.add_argument("-f", "--follow", action="store_true")
    p.add_argument("-p", "--previous", action="store_true")
    p.add_argument("--tail", type=int, help="lines to show (-1: all; default all, 10 with -l)")
    p.add_argument("--since")
    p.add_argument("--since-time")
    p.add_argument("--timestamps", action="store_true")
    p.add_argument("--limit-bytes", type=int)
    p.add_argument("-l", "--selector")
    p.add_argument("--all-containers", action="store_true")
    p.add_argument("--prefix", action="store_true", help="start lines with [pod/NAME/CONTAINER]")
    p.add_argument(
        "--max-log-requests",
        type=int,
        default=5,
        help="most log streams to follow at once with -l and -f (default 5)",
    )
    p.set_defaults(func=run_logs)
    p = sub.add_parser("exec", help="run a command in a container")
    p.add_argument("target")
    p.add_argument("-c", "--container")
    p.add_argument("-i", "--stdin", action="store_true")
    p.add_argument("-t", "--tty", action="store_true")
    p.set_defaults(func=run_exec)
    p = sub.add_parser("top", help="show CPU and memory use of nodes or pods")
    p.add_argument("what", choices=["node", "nodes", "no", "pod", "pods", "po"])
    p.add_argument("name", nargs="?")
    p.add_argument("-l", "--selector")
    p.add_argument("--containers", action="store_true")
    p.add_argument("--no-headers", action="store_true")
    p.set_defaults(func=run_top)
    p = sub.add_parser("autoscale", help="create a HorizontalPodAutoscaler")
    p.add_argument("args", nargs="+", metavar="TYPE NAME | TYPE/NAME")
    p.add_argument("--min", type=int, default=-1)
    p.add_argument("--max", type=int, required=True)
    p.add_argument("--cpu-percent", type=int, default=-1)
    p.add_argument("--name")
    p.set_defaults(func=run_autoscale)


def _duration(text: str) -> int:
    units = {"s": 1, "m": 60, "h": 3600}
    try:
        return int(float(text[:-1]) * units[text[-1]]) if text[-1:] in units else int(text)
    except (ValueError, KeyError):
        raise CliError(f'invalid argument "{text}" for "--since" flag') from None


def pods_for(session: Session, target: str | None, selector: str | None) -> list[dict[str, Any]]:
    """The pods ``POD``, ``pod/POD``, ``TYPE/NAME`` (a workload: its first pod) or ``-l`` name."""
    pods_rt = kinds.lookup("pods")
    ns = session.namespace
    if selector:
        return api.list_objects(session.client, pods_rt, ns, label_selector=selector)
    if not target:
        raise CliError("expected POD or TYPE/NAME (or -l selector)")
    kind, sep, name = target.partition("/")
    if not sep:
        kind, name = "pods", target
    rt = session.resources.resolve(kind)
    if rt.kind == "Pod":
        return [session.client.get(pods_rt, name, ns)]
    obj = session.client.get(rt, name, ns)
    sel = format_label_selector((obj.get("spec") or {}).get("selector"))
    if rt.kind == "Service":
        sel = ",".join(
            f"{k}={v}" for k, v in ((obj.get("spec") or {}).get("selector") or {}).items()
        )
    pods = api.list_objects(session.client, pods_rt, ns, label_selector=sel)
    if not pods:
        raise CliError(f"no pods found for {ref_text(rt, name)}")
    pods.sort(
        key=lambda p: (
            p.get("status", {}).get("phase") != "Running",
            p["metadata"].get("creationTimestamp", ""),
        )
    )
    return pods[:1]


def default_container(pod: dict[str, Any], wanted: str | None) -> str:
    names = [c["name"] for c in (pod.get("spec") or {}).get("containers") or []]
    if wanted:
        if wanted not in names and wanted not in [
            c["name"] for c in (pod.get("spec") or {}).get("initContainers") or []
        ]:
            raise CliError(f"container {wanted} is not valid for pod {pod['metadata']['name']}")
        return wanted
    annotated = (pod["metadata"].get("annotations") or {}).get(DEFAULT_CONTAINER)
    if annotated in names:
        return annotated
    if not names:
        raise CliError(f"pod {pod['metadata']['name']} has no containers")
    return names[0]


def log_params(args: argparse.Namespace, container: str) -> dict[str, str]:
    params = {"container": container}
    if args.follow:
        params["follow"] = "true"
    if args.previous:
        params["previous"] = "true"
    if args.tail is not None and args.tail >= 0:
        params["tailLines"] = str(args.tail)
    if args.since:
        params["sinceSeconds"] = str(_duration(args.since))
    if args.since_time:
        params["sinceTime"] = args.since_time
    if args.timestamps:
        params["timestamps"] = "true"
    if args.limit_bytes:
        params["limitBytes"] = str(args.limit_bytes)
    return params


@dataclass(frozen=True)
class LogStream:
    """One container's log to print."""

    namespace: str
    pod: str
    container: str

    @property
    def prefix(self) -> str:
        return f"[pod/{self.pod}/{self.container}] "


def defaulted_notice(pod: dict[str, Any], chosen: str) -> str | None:
    """kubectl's note when it picked a container of several on its own, else None."""
    spec = pod.get("spec") or {}
    names = [c["name"] for c in spec.get("containers") or []]
    annotated = (pod["metadata"].get("annotations") or {}).get(DEFAULT_CONTAINER)
    if len(names) + len(spec.get("initContainers") or []) < 2 or annotated == chosen:
        return None
    names += [f"{c['name']} (init)" for c in spec.get("initContainers") or []]
    return f'Defaulted container "{chosen}" out of: {", ".join(names)}'


def log_streams(
    session: Session, pods: list[dict[str, Any]], args: argparse.Namespace
) -> list[LogStream]:
    """The streams for ``pods``: the default (or ``-c``) container of each, or with
    ``--all-containers`` the init containers then the containers, in spec order."""
    out = []
    for pod in pods:
        meta, spec = pod["metadata"], pod.get("spec") or {}
        if args.all_containers:
            names = [c["name"] for key in ("initContainers", "containers")
                     for c in spec.get(key) or []]  # fmt: skip
        else:
            names = [default_container(pod, args.container)]
            if not args.container and (notice := defaulted_notice(pod, names[0])):
                session.warn(notice)
        out += [LogStream(meta["namespace"], meta["name"], c) for c in names]
    return out


def print_log(
    session: Session, stream: LogStream, args: argparse.Namespace, write: Callable[[str], None]
) -> None:
    """Copy one container's log (lines, prefixed with ``--prefix``) to ``write``."""
    path = kinds.lookup("pods").path(stream.namespace, stream.pod, "log")
    prefix = stream.prefix if args.prefix else ""
    # the typed client has no raw streaming call yet: use its HTTP session
    with session.client._http.stream(
        "GET", path, params=log_params(args, stream.container), headers={"Accept": "*/*"},
        timeout=None,
    ) as resp:  # fmt: skip
        if resp.is_error:
            resp.read()
            raise error_from_response(resp)
        for line in resp.iter_lines():
            write(prefix + line + "\n")


def follow_all(
    session: Session,
    streams: list[LogStream],
    args: argparse.Namespace,
    write: Callable[[str], None],
) -> None:
    """Follow every stream at once, one thread each; return when all have ended, raise the
    first error as soon as one fails (the other streams are then abandoned, as kubectl does)."""
    lock = threading.Lock()
    finished = threading.Event()
    failures: list[Exception] = []
    left = [len(streams)]

    def follow(stream: LogStream) -> None:
        try:
            print_log(session, stream, args, write)
        except Exception as e:  # re-raised in the calling thread
            with lock:
                failures.append(e)
        finally:
            with lock:
                left[0] -= 1
                if failures or not left[0]:
                    finished.set()

    for stream in streams:
        threading.Thread(target=follow, args=(stream,), daemon=True).start()
    finished.wait()
    if failures:
        raise failures[0]


def run_logs(session: Session, args: argparse.Namespace) -> int:
    if args.container_arg and not args.container:
        args.container = args.container_arg
    if args.selector and args.target:
        raise CliError("only a selector (-l) or a POD name is allowed")
    pods = pods_for(session, args.target, args.selector)
    if args.selector and not pods:
        session.warn(f"No resources found in {session.namespace} namespace.")
        return 0
    if args.selector and args.tail is None:
        args.tail = 10  # kubectl's default with a selector
    streams = log_streams(session, pods, args)
    lock = threading.Lock()

    def write(text: str) -> None:
        with lock:  # whole lines, whichever stream they come from
            session.out.write(text)
            session.out.flush()

    if args.follow and len(streams) > 1:
        if len(streams) > args.max_log_requests:
            raise CliError(
                f"you are attempting to follow {len(streams)} log streams, but maximum allowed "
                f"concurrency is {args.max_log_requests}, use --max-log-requests to increase "
                "the limit"
            )
        follow_all(session, streams, args, write)
        return 0
    for stream in streams:
        print_log(session, stream, args, write)
    return 0


# ------------------------------------------------------------------------------ exec


def exit_code(status: dict[str, Any]) -> int:
    """Exit code from the channel-3 ``Status`` (0 on Success)."""
    if status.get("status") == "Success":
        return 0
    for cause in (status.get("details") or {}).get("causes") or []:
        if cause.get("reason") == "ExitCode":
            try:
                return int(cause.get("message", "1"))
            except ValueError:
                return 1
    raise CliError(status.get("message") or "command failed")


def exec_url(
    session: Session,
    pod: dict[str, Any],
    container: str,
    command: list[str],
    stdin: bool,
    tty: bool,
) -> str:
    from urllib.parse import urlencode

    q = [("command", c) for c in command] + [
        ("container", container),
        ("stdout", "true"),
        ("stderr", "false" if tty else "true"),
    ]
    if stdin:
        q.append(("stdin", "true"))
    if tty:
        q.append(("tty", "true"))
    base = session.server.replace("https://", "wss://", 1).replace("http://", "ws://", 1)
    path = kinds.lookup("pods").path(pod["metadata"]["namespace"], pod["metadata"]["name"], "exec")
    return f"{base}{path}?{urlencode(q)}"


def upgrade_error(e: Any) -> errors.ApiError:
    """The API error behind a refused WebSocket upgrade (a ``websockets`` ``InvalidStatus``):
    its ``Status`` body, else its text."""
    body = e.response.body or b""
    try:
        status = json.loads(body)
    except ValueError:
        status = {"message": body.decode(errors="replace") or str(e)}
    return errors.from_status(status, e.response.status_code)


def run_exec(session: Session, args: argparse.Namespace) -> int:
    command = list(getattr(args, "after_dashes", []))
    if not command:
        raise CliError("you must specify at least one command for the container")
    pod = pods_for(session, args.target, None)[0]
    container = default_container(pod, args.container)
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    cfg = session.cluster
    headers = {"Authorization": f"Bearer {cfg.token}"} if cfg.token else {}
    ssl_ctx = cfg.ssl_context() if cfg.server.startswith("https") else None
    url = exec_url(session, pod, container, command, args.stdin, args.tty)
    try:
        ws = connect(
            url,
            subprotocols=["v5.channel.k8s.io", "v4.channel.k8s.io"],
            additional_headers=headers,
            ssl=ssl_ctx if ssl_ctx is not True else None,
            open_timeout=session.flags.request_timeout or None,
            max_size=None,
        )
    except InvalidStatus as e:
        raise upgrade_error(e) from None
    v5 = ws.subprotocol == "v5.channel.k8s.io"
    if args.stdin:
        threading.Thread(target=_pump_stdin, args=(ws, v5), daemon=True).start()
    out = getattr(sys.stdout, "buffer", None)
    code = 0
    with ws, _raw_terminal(ws, args.tty and args.stdin):
        for frame in ws:
            data = frame if isinstance(frame, bytes) else frame.encode()
            if not data:
                continue
            channel, payload = data[0], data[1:]
            if channel == STDOUT:
                _write(session.out, out, payload)
            elif channel == STDERR:
                _write(session.err, getattr(sys.stderr, "buffer", None), payload)
            elif channel == STATUS:
                code = exit_code(json.loads(payload or b"{}"))
                break
    return code


def _write(text_stream: Any, binary: Any, payload: bytes) -> None:
    if binary is not None and text_stream in (sys.stdout, sys.stderr):
        binary.write(payload)
        binary.flush()
    else:
        text_stream.write(payload.decode(errors="replace"))


def _pump_stdin(ws: Any, v5: bool) -> None:
    """Send stdin to the container until it ends (then close the channel, on v5)."""
    try:
        while chunk := _read_stdin():
            ws.send(bytes([STDIN]) + chunk)
        if v5:
            ws.send(bytes([CLOSE, STDIN]))
    except Exception:
        return


def _read_stdin() -> bytes:
    """Whatever stdin has, at most 4 KiB. A real file is read with ``os.read``: a daemon
    thread blocked inside a buffered reader makes the interpreter abort at exit."""
    try:
        fd = sys.stdin.fileno()
    except (AttributeError, OSError, ValueError):  # not a file (a StringIO in tests)
        chunk = sys.stdin.read(4096)
        return chunk if isinstance(chunk, bytes) else chunk.encode()
    return os.read(fd, 4096)


@contextlib.contextmanager
def _raw_terminal(ws: Any, wanted: bool) -> Iterator[None]:
    """With ``-it`` on a terminal, as kubectl: the local terminal in raw mode (keys go to the
    container as typed) and its size sent on the resize channel, now and on every SIGWINCH."""
    if not wanted or not sys.stdin.isatty():
        yield
        return
    import signal
    import termios
    import tty

    fd = sys.stdin.fileno()

    def send_size(*_: Any) -> None:
        size = os.get_terminal_size(fd)
        resize = {"Width": size.columns, "Height": size.lines}
        ws.send(bytes([RESIZE]) + json.dumps(resize).encode())

    saved = termios.tcgetattr(fd)
    tty.setraw(fd)
    previous = signal.signal(signal.SIGWINCH, send_size)
    try:
        send_size()
        yield
    finally:
        signal.signal(signal.SIGWINCH, previous)
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


# ------------------------------------------------------------------------------ top


def _metrics(session: Session, path: str, selector: str | None) -> list[dict[str, Any]]:
    try:
        body = session.client.request(
            "GET", path, params={"labelSelector": selector} if selector else {}
        ).json()
    except errors.NotFound:
        raise CliError("Metrics API not available") from None
    return body.get("items") if "items" in body else [body]


def _cpu(v: Any) -> str:
    return f"{cpu_millis(v or '0')}m"


def _mem(v: Any) -> str:
    return f"{to_bytes(v or '0') // (1024 * 1024)}Mi"


def run_top(session: Session, args: argparse.Namespace) -> int:
    base = "/apis/metrics.k8s.io/v1beta1"
    if args.what in ("node", "nodes", "no"):
        path = f"{base}/nodes" + (f"/{args.name}" if args.name else "")
        items = _metrics(session, path, args.selector)
        nodes = {
            n["metadata"]["name"]: n
            for n in api.list_objects(session.client, kinds.lookup("nodes"), None)
        }
        lines = [["NAME", "CPU(cores)", "CPU(%)", "MEMORY(bytes)", "MEMORY(%)"]]
        for m in sorted(items, key=lambda i: i["metadata"]["name"]):
            name, usage = m["metadata"]["name"], m.get("usage") or {}
            alloc = (nodes.get(name, {}).get("status") or {}).get("allocatable") or {}
            cpu, mem = cpu_millis(usage.get("cpu", "0")), to_bytes(usage.get("memory", "0"))
            acpu, amem = cpu_millis(alloc.get("cpu", "0")), to_bytes(alloc.get("memory", "0"))
            lines.append(
                [
                    name,
                    _cpu(usage.get("cpu")),
                    f"{cpu * 100 // acpu}%" if acpu else "<unknown>",
                    _mem(usage.get("memory")),
                    f"{mem * 100 // amem}%" if amem else "<unknown>",
                ]
            )
    else:
        ns = None if session.flags.all_namespaces else session.namespace
        path = f"{base}/namespaces/{ns}/pods" if ns else f"{base}/pods"
        if args.name:
            path += f"/{args.name}"
        items = _metrics(session, path, args.selector)
        if not items:
            raise CliError(
                f"Metrics not available for pod {ns}/{args.name}"
                if args.name
                else f"No resources found in {ns} namespace."
            )
        lines = [
            (["NAMESPACE"] if not ns else [])
            + (["POD", "NAME"] if args.containers else ["NAME"])
            + ["CPU(cores)", "MEMORY(bytes)"]
        ]
        for m in sorted(items, key=lambda i: i["metadata"]["name"]):
            lead = [m["metadata"].get("namespace", "")] if not ns else []
            cs = m.get("containers") or []
            if args.containers:
                for c in cs:
                    u = c.get("usage") or {}
                    cells = [
                        m["metadata"]["name"],
                        c["name"],
                        _cpu(u.get("cpu")),
                        _mem(u.get("memory")),
                    ]
                    lines.append([*lead, *cells])
            else:
                cpu = sum(cpu_millis((c.get("usage") or {}).get("cpu", "0")) for c in cs)
                mem = sum(to_bytes((c.get("usage") or {}).get("memory", "0")) for c in cs)
                lines.append([*lead, m["metadata"]["name"], f"{cpu}m", f"{mem // (1024 * 1024)}Mi"])
    session.out.write(pad_columns(lines[1:] if args.no_headers else lines))
    return 0


# ------------------------------------------------------------------------------ autoscale


def run_autoscale(session: Session, args: argparse.Namespace) -> int:
    from cli.verbs.modify import resolve_refs

    refs = resolve_refs(session, args.args)
    for rt, name, ns in refs:
        if "scale" not in rt.subresources:
            raise CliError(f"cannot autoscale a {rt.kind}: it has no scale subresource")
        if args.max < 1 or (args.min > args.max):
            raise CliError(
                "--max=MAXPODS is required and must be at least 1, max replicas "
                "must not be less than min replicas"
            )
        spec: dict[str, Any] = {
            "scaleTargetRef": {"apiVersion": rt.api_version, "kind": rt.kind, "name": name},
            "maxReplicas": args.max,
        }
        if args.min >= 0:
            spec["minReplicas"] = args.min
        if args.cpu_percent >= 0:
            spec["metrics"] = [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": args.cpu_percent},
                    },
                }
            ]
        hpa = {
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": args.name or name, "namespace": ns},
            "spec": spec,
        }
        hpa_rt = session.resources.for_kind("autoscaling/v2", "HorizontalPodAutoscaler")
        session.client.create(hpa_rt, hpa, ns, field_manager="kubectl-autoscale")
        session.print(f"horizontalpodautoscaler.autoscaling/{args.name or name} autoscaled")
    return 0

"""Record the protobuf request bodies real kubectl and helm send (regenerates this directory).

Run ``python -m tests.unit.protobuf_fixtures.record`` from the repository root with kubectl and
helm in ``.tools/bin``. It starts ``python -m apiserver`` on a temporary directory and a
recording proxy in front of it on 127.0.0.1, points a kubeconfig at the proxy and runs each
command of :data:`COMMANDS`. Every request with a protobuf body is saved as ``NAME.pb`` and
listed in ``requests.txt``; the proxy then forwards it as JSON (decoded by
:mod:`apiserver.protobuf`) so that multi-step commands (helm install, uninstall) go on.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import orjson

from apiserver import protobuf
from tests.conftest import start_apiserver

HERE = Path(__file__).parent
ROOT = HERE.parents[2]
KUBECTL = ROOT / ".tools/bin/kubectl"
HELM = ROOT / ".tools/bin/helm"

#: (fixture name, command); kubectl and helm run with the proxy's kubeconfig.
COMMANDS: list[tuple[str, list[str]]] = [
    ("namespace", [str(KUBECTL), "create", "namespace", "x"]),
    ("configmap", [str(KUBECTL), "create", "configmap", "c", "--from-literal=a=b"]),
    ("secret", [str(KUBECTL), "create", "secret", "generic", "s", "--from-literal=k=v"]),
    ("service-clusterip", [str(KUBECTL), "create", "service", "clusterip", "s", "--tcp=80:8080"]),
    (
        "service-nodeport",
        [str(KUBECTL), "create", "service", "nodeport", "np", "--tcp=80:8080", "--node-port=30080"],
    ),
    ("serviceaccount", [str(KUBECTL), "create", "serviceaccount", "sa"]),
    (
        "deployment",
        [str(KUBECTL), "create", "deployment", "d", "--image=busybox:1.35", "--replicas=2"],
    ),
    ("job", [str(KUBECTL), "create", "job", "j", "--image=busybox:1.35"]),
    (
        "cronjob",
        [str(KUBECTL), "create", "cronjob", "cj", "--image=busybox:1.35", "--schedule=*/5 * * * *"],
    ),
    (
        "autoscale",
        [str(KUBECTL), "autoscale", "deployment", "d", "--min=1", "--max=3", "--cpu-percent=50"],
    ),
    ("token", [str(KUBECTL), "create", "token", "sa", "--duration=10m"]),
    ("helm-install", [str(HELM), "install", "r", "{chart}"]),
    ("helm-uninstall", [str(HELM), "uninstall", "r"]),
]

CHART = {
    "Chart.yaml": "apiVersion: v2\nname: empty\nversion: 0.1.0\n",
    "templates/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: helm-cm}\n",
}


@dataclass
class Recording:
    """One protobuf request: the file its body went to, its method and path."""

    file: Path
    method: str
    path: str


HOP_HEADERS = ("content-length", "transfer-encoding", "connection", "content-encoding")


class Recorder:
    """Forwards to ``upstream``; saves protobuf bodies under the current label."""

    def __init__(self, upstream: str, out: Path) -> None:
        self.upstream = httpx.Client(base_url=upstream, timeout=30)
        self.out = out
        self.label = ""
        self.recordings: list[Recording] = []
        self.counts: dict[str, int] = {}

    def save(self, method: str, path: str, body: bytes) -> None:
        n = self.counts[self.label] = self.counts.get(self.label, 0) + 1
        name = self.label if n == 1 else f"{self.label}-{n}"
        file = self.out / f"{name}.pb"
        file.write_bytes(body)
        self.recordings.append(Recording(file, method, path))


def handler(rec: Recorder) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def forward(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            headers = {
                k: v
                for k, v in self.headers.items()
                if k.lower() not in ("host", "content-length", "connection", "accept-encoding")
            }
            if body.startswith(protobuf.MAGIC):
                rec.save(self.command, self.path, body)
                try:
                    body = orjson.dumps(protobuf.decode(body))
                    headers["Content-Type"] = "application/json"
                except Exception as exc:  # keep the raw body: the server will answer 415
                    print(f"  cannot decode {self.path}: {exc}", file=sys.stderr)
            resp = rec.upstream.request(self.command, self.path, content=body, headers=headers)
            self.send_response(resp.status_code)
            for k, v in resp.headers.items():
                if k.lower() not in HOP_HEADERS:
                    self.send_header(k, v)
            self.send_header("Content-Length", str(len(resp.content)))
            self.end_headers()
            self.wfile.write(resp.content)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = forward

    return Handler


def record(commands: list[tuple[str, list[str]]], out: Path) -> tuple[list[Recording], list[str]]:
    """Run ``commands`` against a fresh API server behind the recording proxy.

    Bodies land in ``out``. Returns the recordings in request order and one line per command
    that failed (its bodies are recorded all the same).
    """
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        api = start_apiserver(work)
        rec = Recorder(api.url, out)
        proxy = ThreadingHTTPServer(("127.0.0.1", 0), handler(rec))
        threading.Thread(target=proxy.serve_forever, daemon=True).start()
        failures: list[str] = []
        try:
            kubeconfig = work / "proxy.kubeconfig"
            kubeconfig.write_text(
                Path(api.kubeconfig)
                .read_text()
                .replace(api.url, f"http://127.0.0.1:{proxy.server_port}")
            )
            chart = work / "chart"
            for rel, text in CHART.items():
                (chart / rel).parent.mkdir(parents=True, exist_ok=True)
                (chart / rel).write_text(text)
            env = {"KUBECONFIG": str(kubeconfig), "HOME": str(work), "PATH": "/usr/bin:/bin"}
            for label, cmd in commands:
                rec.label = label
                argv = [c.replace("{chart}", str(chart)) for c in cmd]
                done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
                if done.returncode:
                    failures.append(f"{label}: {done.stderr.strip()}")
        finally:
            proxy.shutdown()
            proxy.server_close()
            rec.upstream.close()
            api.stop()
    return rec.recordings, failures


def main() -> int:
    recordings, failures = record(COMMANDS, HERE)
    for failure in failures:
        print(f"failed (bodies still recorded): {failure}", file=sys.stderr)
    lines = [f"{r.file.name} {r.method} {r.path}" for r in recordings]
    (HERE / "requests.txt").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

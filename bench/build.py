"""Image build benchmark: a first build, an unchanged rebuild, a rebuild after one file changed.

``python -m bench.build [--rounds 5]`` (root; containerd, runc, umoci and skopeo installed:
``hack/install-runtime.sh``). It starts its own containerd (:mod:`bench.containerd`, bridge
``tugbench1``, 10.244.253.0/24) holding the shipped ``busybox:1.35``, writes a build context
into a temp dir (a Dockerfile of 16 steps: two ``ARG`` and ``ENV``, ``WORKDIR``, four ``RUN`` that
write files and loop in runc, three ``COPY`` of context files, ``LABEL``, ``EXPOSE``, ``USER``,
``CMD``) and builds it with :class:`kubelet.images.build.Builder` in this process, as
``tug image build`` does. Each round, on a fresh build cache:

* **first**: the cold build: the base image copied from containerd into the cache, every step
  run, the image exported and loaded into containerd;
* **rebuild**: the same context again: every step is a cache hit, the image is exported again
  and found already loaded;
* **changed**: after editing one file that the last ``COPY`` reads: the steps before it come
  from the cache, that ``COPY`` and the config steps after it run, the new image is loaded.

It prints each round, then p50 and max seconds of each kind with its cached steps, the speed-up
first / rebuild (p50 of the rounds' ratios and the worst round's), where each kind's time goes
(p50 ms of: the steps by instruction, ``COPY`` including the hashing of what it reads;
``export``, writing the image archive; ``load``, into containerd or finding it there; the rest:
parsing, the names file and looking the base image up in containerd) and this process's peak
RSS (the builder runs in it; umoci, runc, skopeo and ctr are other processes) next to that peak
before the first build. It exits 1 when a rebuild ran a step, gave another digest, or the
changed rebuild ran other steps than the last ``COPY`` on: the figures would mean nothing.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.common import percentile
from bench.containerd import own_containerd
from kubelet.images.build import Builder, BuildError, BuildResult
from kubelet.images.store import load_image

BRIDGE, CIDR = "tugbench1", "10.244.253.0/24"

DOCKERFILE = """\
FROM busybox:1.35
ARG GREETING=hello
ARG FILES=300
ENV APP_HOME=/app LANG=C.UTF-8
WORKDIR $APP_HOME
RUN mkdir -p data && i=0 && while [ $i -lt $FILES ]; do \\
        echo "$GREETING $i" > data/f$i.txt; i=$((i + 1)); done
RUN i=0; while [ $i -lt 20000 ]; do i=$((i + 1)); done; \\
    cat data/*.txt | md5sum > data.md5 && test -s data.md5
COPY site/ ./www/
COPY bin/ /usr/local/bin/
RUN echo "app:x:1000:1000::/home/app:/bin/sh" >> /etc/passwd && \\
    echo "app:x:1000:" >> /etc/group && mkdir -p /home/app /var/lib/app && \\
    chown 1000:1000 /home/app /var/lib/app
RUN seq 1 50000 > /var/lib/app/numbers && gzip -k /var/lib/app/numbers
ENV CONF_DIR=/app/conf
COPY conf/ ./conf/
LABEL org.example.bench=build
EXPOSE 8080
USER 1000
CMD ["/usr/local/bin/serve.sh"]
"""
LATE_COPY = "COPY conf/ ./conf/"
CHANGED = Path("conf") / "app.conf"
SERVE = """#!/bin/sh
. "$CONF_DIR/app.conf"
exec httpd -f -p "$PORT" -h /app/www
"""


def write_context(root: Path) -> Path:
    """The build context: the Dockerfile, 40 pages and a stylesheet, two scripts, a config."""
    ctx = root / "ctx"
    site = ctx / "site"
    (site / "css").mkdir(parents=True)
    for i in range(40):
        (site / f"page{i}.html").write_text(f"<h1>page {i}</h1>\n" + "<p>text</p>\n" * 50)
    (site / "css" / "site.css").write_text("body { font-family: sans-serif; }\n" * 20)
    (ctx / "bin").mkdir()
    for name, text in (("serve.sh", SERVE), ("check.sh", "#!/bin/sh\ntest -f /app/data.md5\n")):
        (ctx / "bin" / name).write_text(text)
        (ctx / "bin" / name).chmod(0o755)
    (ctx / "conf").mkdir()
    (ctx / CHANGED).write_text("PORT=8080\n")
    (ctx / "conf" / "motd").write_text("built by bench.build\n")
    (ctx / "Dockerfile").write_text(DOCKERFILE)
    return ctx


class TimedBuilder(Builder):
    """A :class:`Builder` that notes how long each ``export`` (writing the archive) took."""

    def __init__(self, cache_dir: Path, sockets: list[str]) -> None:
        super().__init__(cache_dir, sockets)
        self.export_seconds: list[float] = []

    def export(self, tag: str, name: str, path: Path) -> str:
        t0 = time.monotonic()
        try:
            return super().export(tag, name, path)
        finally:
            self.export_seconds.append(time.monotonic() - t0)


@dataclass
class Timed:
    """One build: its result, the seconds of its ``export`` and of the load into containerd."""

    result: BuildResult
    export: float
    load: float

    @property
    def seconds(self) -> float:
        return self.result.seconds + self.load

    def parts(self) -> dict[str, float]:
        """Its seconds split into the steps by instruction (RUN, COPY, the config ones),
        ``export``, ``load`` and the rest."""
        out = {"RUN": 0.0, "COPY": 0.0, "config": 0.0}
        for s in self.result.steps:
            kind = s.text.split(None, 1)[0].upper()
            kind = kind if kind in ("RUN", "COPY") else "config"
            out[kind] += s.seconds
        rest = self.result.seconds - sum(out.values()) - self.export
        return {**out, "export": self.export, "load": self.load, "rest": rest}


@dataclass
class Kind:
    """The builds of one kind (first, rebuild, changed) over the rounds."""

    builds: list[Timed] = field(default_factory=list)

    @property
    def seconds(self) -> list[float]:
        return [b.seconds for b in self.builds]

    def cached(self) -> str:
        counts = sorted({(b.result.cached_steps, len(b.result.steps)) for b in self.builds})
        return ", ".join(f"{c}/{n}" for c, n in counts)

    def where(self) -> str:
        """p50 milliseconds of each part (:meth:`Timed.parts`) over the rounds."""
        parts: dict[str, list[float]] = {}
        for b in self.builds:
            for k, v in b.parts().items():
                parts.setdefault(k, []).append(v)
        return "   ".join(f"{k} {percentile(v, 50) * 1e3:.0f}" for k, v in parts.items())


def build(builder: TimedBuilder, ctx: Path, name: str, socket: str) -> Timed:
    """``builder.build`` as ``tug image build`` runs it, its load into containerd timed apart
    (what ``build`` does with its sockets: :func:`~kubelet.images.store.load_image`)."""
    result = builder.build(ctx, name, load=False)
    t0 = time.monotonic()
    load_image(socket, result.archive)
    return Timed(result, builder.export_seconds[-1], time.monotonic() - t0)


def problems(first: Timed, rebuild: Timed, changed: Timed) -> list[str]:
    """Why this round's figures would mean nothing (empty when they are sound)."""
    out = []
    r, c = rebuild.result, changed.result
    if r.cached_steps != len(r.steps):
        missed = [s.text for s in r.steps if not s.cached]
        out.append(f"the unchanged rebuild ran {len(missed)} step(s) again: {missed}")
    if r.digest != first.result.digest:
        out.append(f"the unchanged rebuild gave {r.digest}, the first build {first.result.digest}")
    late = next(i for i, s in enumerate(c.steps) if s.text == LATE_COPY)
    ran = [i for i, s in enumerate(c.steps) if not s.cached]
    if ran != list(range(late, len(c.steps))):
        out.append(
            f"the changed rebuild ran {[c.steps[i].text for i in ran]}, not {LATE_COPY!r} on"
        )
    return out


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def kind_line(name: str, kind: Kind, note: str) -> str:
    s = kind.seconds
    return (
        f"{name:<28} n={len(s):<3} p50 {percentile(s, 50):6.3f} s   max {max(s):6.3f} s   "
        f"cached steps {kind.cached()}{note}"
    )


def run(rounds: int, work: Path, socket: str) -> int:
    ctx = write_context(work)
    original = (ctx / CHANGED).read_text()
    first, rebuild, changed = Kind(), Kind(), Kind()
    rss_before = peak_rss_mib()
    for r in range(rounds):
        cache = work / f"cache-{r}"
        builder = TimedBuilder(cache, [socket])
        name = f"localhost/bench/app:{r}"
        first.builds.append(build(builder, ctx, name, socket))
        rebuild.builds.append(build(builder, ctx, name, socket))
        (ctx / CHANGED).write_text(f"PORT=8080\n# round {r}\n")
        try:
            changed.builds.append(build(builder, ctx, name, socket))
        finally:
            (ctx / CHANGED).write_text(original)
        shutil.rmtree(cache)
        bad = problems(first.builds[-1], rebuild.builds[-1], changed.builds[-1])
        if bad:
            print(f"bench.build: round {r + 1}: " + "; ".join(bad), file=sys.stderr)
            print("bench.build: so the figures would mean nothing", file=sys.stderr)
            return 1
        f, b, c = (k.builds[-1].seconds for k in (first, rebuild, changed))
        print(
            f"round {r + 1}: first {f:.3f} s   rebuild {b:.3f} s ({f / b:.1f}x)   "
            f"changed {c:.3f} s",
            flush=True,
        )
    ratios = [a / b for a, b in zip(first.seconds, rebuild.seconds, strict=True)]
    print(kind_line("first build (cold cache)", first, " (ARG makes no image)"))
    print(kind_line("unchanged rebuild", rebuild, ", same digest"))
    print(kind_line("rebuild, one file changed", changed, f" ({CHANGED}: {LATE_COPY!r} on)"))
    print(
        f"{'speed-up first / rebuild':<28} p50 {percentile(ratios, 50):.1f}x   "
        f"worst {min(ratios):.1f}x"
    )
    for name, kind in (("first", first), ("rebuild", rebuild), ("changed", changed)):
        print(f"{name + ', p50 ms':<28} {kind.where()}")
    print(
        f"{'builder process peak RSS':<28} {peak_rss_mib():.0f} MiB "
        f"({rss_before:.0f} MiB before the first build)"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.build", description=__doc__)
    p.add_argument("--rounds", type=int, default=5, help="rounds, each on a fresh cache")
    args = p.parse_args(argv)
    if os.geteuid() != 0:
        print("needs root (containerd, runc)", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="tug-bench-build-") as d:
        work = Path(d)
        with own_containerd(work, BRIDGE, CIDR) as socket:
            try:
                return run(args.rounds, work, socket)
            except BuildError as e:
                print(f"bench.build: {e}", file=sys.stderr)
                return 1


if __name__ == "__main__":
    raise SystemExit(main())

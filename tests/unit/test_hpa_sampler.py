"""The node agent's resource sampler over the fake runtime: CPU rates from cumulative usage
between two rounds, memory working set, and both renderings (Prometheus text, JSON)."""

from __future__ import annotations

from kubelet import labels as L
from kubelet.cri import api_pb2 as pb
from kubelet.cri.fake import FakeRuntime
from kubelet.metrics import ResourceSampler, prometheus_text, summary


class Clock:
    def __init__(self) -> None:
        self.now = 5_000.0

    def __call__(self) -> float:
        return self.now


class Runtime:
    """The two RPCs the sampler uses, served by a FakeRuntime in-process."""

    def __init__(self, fake: FakeRuntime) -> None:
        self.fake = fake

    async def list_container_stats(self, labels):
        req = pb.ListContainerStatsRequest(filter=pb.ContainerStatsFilter(label_selector=labels))
        return list(self.fake.ListContainerStats(req).stats)


def run_pod(fake: FakeRuntime, uid: str, names: list[str], node: str = "n1") -> None:
    meta = pb.PodSandboxMetadata(name=f"pod-{uid}", namespace="ns", uid=uid)
    sandbox = fake.RunPodSandbox(
        pb.RunPodSandboxRequest(
            config=pb.PodSandboxConfig(
                metadata=meta, labels=L.pod_labels(f"pod-{uid}", "ns", uid, node)
            )
        )
    ).pod_sandbox_id
    for name in names:
        cfg = pb.ContainerConfig(
            metadata=pb.ContainerMetadata(name=name),
            image=pb.ImageSpec(image="busybox:1.35"),
            labels={**L.pod_labels(f"pod-{uid}", "ns", uid, node), L.CONTAINER_NAME: name},
        )
        cid = fake.CreateContainer(
            pb.CreateContainerRequest(pod_sandbox_id=sandbox, config=cfg)
        ).container_id
        fake.StartContainer(pb.StartContainerRequest(container_id=cid))


async def test_rates_need_two_rounds_and_follow_the_set_load():
    clock = Clock()
    fake = FakeRuntime(clock=clock)
    run_pod(fake, "u1", ["a", "b"])
    run_pod(fake, "u2", ["c"], node="other")  # another node's pod is not sampled
    fake.set_usage("u1", 400, 200 * 1024 * 1024)
    sampler = ResourceSampler(Runtime(fake), "n1", period=10, clock=clock)
    assert await sampler.sample() is None
    clock.now += 10
    s = await sampler.sample()
    assert s is not None and sampler.latest is s
    assert [(p.uid, [c.name for c in p.containers]) for p in s.pods] == [("u1", ["a", "b"])]
    assert s.cpu_nano_cores == 400_000_000
    assert s.memory_bytes == 200 * 1024 * 1024
    assert s.window == 10
    fake.set_usage("u1", 100, 10)
    clock.now += 5
    s = await sampler.sample()
    assert s.cpu_nano_cores == 100_000_000 and s.window == 5


async def test_idle_node_reports_zero():
    clock = Clock()
    sampler = ResourceSampler(Runtime(FakeRuntime(clock=clock)), "n1", clock=clock)
    await sampler.sample()
    clock.now += 10
    s = await sampler.sample()
    assert s is not None and (s.cpu_nano_cores, s.pods) == (0, [])


async def test_renderings():
    clock = Clock()
    fake = FakeRuntime(clock=clock)
    run_pod(fake, "u1", ["a"])
    fake.set_usage("u1", 1000, 1024)
    sampler = ResourceSampler(Runtime(fake), "n1", clock=clock)
    await sampler.sample()
    clock.now += 10
    s = await sampler.sample()
    text = prometheus_text([s])
    assert (
        'container_cpu_usage_seconds_total{container="a",namespace="ns",pod="pod-u1"} 10 ' in text
    )
    assert (
        'container_memory_working_set_bytes{container="a",namespace="ns",pod="pod-u1"} 1024 '
        in text
    )
    assert "scrape_error 0" in text
    body = summary([s])
    assert body["nodes"][0]["pods"][0]["containers"][0]["cpu_nano_cores"] == 1_000_000_000

"""Service proxy: rule computation (pure) and the iptables rendering, checked by the real
``iptables-restore`` inside a throwaway network namespace when we are root."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from kubelet.proxy.iptables import IptablesConfig, existing_chains, render, render_cleanup
from kubelet.proxy.proxier import ComputeOnlyBackend
from kubelet.proxy.rules import compute_ruleset, endpoints_for_port, service_rules

Obj = dict[str, Any]


def svc(name: str = "web", ns: str = "default", **spec: Any) -> Obj:
    body: Obj = {
        "type": "ClusterIP",
        "clusterIP": "10.96.0.20",
        "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}],
        "selector": {"app": name},
    }
    body.update(spec)
    return {"metadata": {"name": name, "namespace": ns}, "spec": body}


def eps(
    service: str,
    endpoints: list[tuple[str, dict[str, bool]]],
    port: int = 8080,
    port_name: str = "http",
    ns: str = "default",
) -> Obj:
    return {
        "metadata": {
            "name": f"{service}-x",
            "namespace": ns,
            "labels": {"kubernetes.io/service-name": service},
        },
        "addressType": "IPv4",
        "ports": [{"name": port_name, "port": port, "protocol": "TCP"}],
        "endpoints": [{"addresses": [ip], "conditions": c} for ip, c in endpoints],
    }


READY = {"ready": True, "serving": True, "terminating": False}
NOT_READY = {"ready": False, "serving": False, "terminating": False}
DRAINING = {"ready": False, "serving": True, "terminating": True}


@pytest.mark.parametrize(
    ("endpoints", "expected"),
    [
        ([("10.0.0.2", READY), ("10.0.0.1", READY)], ["10.0.0.1", "10.0.0.2"]),
        ([("10.0.0.1", READY), ("10.0.0.2", NOT_READY)], ["10.0.0.1"]),
        ([("10.0.0.1", {})], ["10.0.0.1"]),
        ([("10.0.0.1", NOT_READY), ("10.0.0.2", DRAINING)], ["10.0.0.2"]),
        ([("10.0.0.1", READY), ("10.0.0.2", DRAINING)], ["10.0.0.1"]),
        ([("10.0.0.1", NOT_READY)], []),
    ],
    ids=["sorted", "not-ready-excluded", "unset-is-ready", "drain-fallback", "ready-wins", "none"],
)
def test_endpoint_selection(endpoints: list[Any], expected: list[str]) -> None:
    got = endpoints_for_port([eps("web", endpoints)], "http", "TCP")
    assert [ip for ip, _ in got] == expected
    assert all(port == 8080 for _, port in got)


def test_slice_ports_match_by_name_and_protocol() -> None:
    s = eps("web", [("10.0.0.1", READY)], port_name="metrics")
    assert endpoints_for_port([s], "http", "TCP") == []
    assert endpoints_for_port([s], "metrics", "UDP") == []
    assert endpoints_for_port([s], "metrics", "TCP") == [("10.0.0.1", 8080)]


@pytest.mark.parametrize(
    ("service", "count"),
    [
        (svc(), 1),
        (svc(clusterIP="None"), 0),
        (svc(type="ExternalName", externalName="example.org", clusterIP=None), 0),
        (svc(ports=[{"name": "a", "port": 80}, {"name": "b", "port": 81, "protocol": "UDP"}]), 2),
    ],
    ids=["cluster-ip", "headless", "external-name", "two-ports"],
)
def test_which_services_get_rules(service: Obj, count: int) -> None:
    assert len(service_rules(service, [])) == count


def test_node_port_affinity_and_external_ips() -> None:
    service = svc(
        type="NodePort",
        ports=[{"name": "http", "port": 80, "nodePort": 30080}],
        sessionAffinity="ClientIP",
        externalIPs=["192.0.2.50"],
    )
    [rule] = service_rules(service, [eps("web", [("10.0.0.1", READY)])])
    assert (rule.node_port, rule.affinity_timeout, rule.external_ips) == (
        30080,
        10800,
        ("192.0.2.50",),
    )
    ruleset = compute_ruleset([service], {"default/web": [eps("web", [("10.0.0.1", READY)])]})
    assert ruleset.find("10.96.0.20", 80) == rule
    assert ruleset.find("192.0.2.50", 80) == rule
    assert ruleset.find_node_port(30080) == rule
    assert ruleset.find("10.96.0.20", 81) is None
    # a ClusterIP service gets no node port even if one is written
    [plain] = service_rules(svc(ports=[{"port": 80, "nodePort": 30081}]), [])
    assert plain.node_port is None


def test_ruleset_is_deterministic() -> None:
    services = [svc("a", clusterIP="10.96.0.21"), svc("b", clusterIP="10.96.0.22")]
    slices = {
        "default/a": [eps("a", [("10.0.0.3", READY), ("10.0.0.1", READY)])],
        "default/b": [eps("b", [("10.0.0.2", READY)])],
    }
    one = compute_ruleset(services, slices)
    two = compute_ruleset(list(reversed(services)), slices)
    assert one == two
    assert one.endpoint_count() == 3


# -- rendering -----------------------------------------------------------------------------

CONFIG = IptablesConfig(prefix="TUGT")


def _chain_rules(text: str, chain: str) -> list[str]:
    return [ln for ln in text.splitlines() if ln.startswith(f"-A {chain} ")]


def test_render_balances_with_falling_probabilities() -> None:
    ruleset = compute_ruleset(
        [svc()], {"default/web": [eps("web", [(f"10.0.0.{i}", READY) for i in (1, 2, 3)])]}
    )
    text, declared = render(ruleset, CONFIG)
    [jump] = [ln for ln in _chain_rules(text, "TUGT-SERVICES") if "10.96.0.20/32" in ln]
    svc_chain = jump.split("-j ")[-1]
    rules = _chain_rules(text, svc_chain)
    probs = [float(m) for r in rules for m in re.findall(r"--probability (\S+)", r)]
    assert probs == pytest.approx([1 / 3, 1 / 2])
    assert rules[-1].split("-j ")[-1].startswith("TUGT-SEP-") and "probability" not in rules[-1]
    dnats = re.findall(r"--to-destination (\S+)", text)
    assert sorted(dnats) == ["10.0.0.1:8080", "10.0.0.2:8080", "10.0.0.3:8080"]
    assert all(len(c) <= 28 for cs in declared.values() for c in cs)


def test_render_rejects_services_without_endpoints_and_guards_the_cidr() -> None:
    ruleset = compute_ruleset([svc(type="NodePort", ports=[{"port": 80, "nodePort": 30080}])], {})
    text, _ = render(ruleset, CONFIG)
    filt = _chain_rules(text, "TUGT-FILTER")
    assert any("-d 10.96.0.20/32" in r and "REJECT" in r for r in filt)
    assert any("--dport 30080" in r and "REJECT" in r for r in filt)
    assert "10.96.0.0/16" in filt[-1] and "! --dst-type LOCAL" in filt[-1]
    assert "DNAT" not in text


def test_render_affinity_and_node_ports() -> None:
    service = svc(type="NodePort", sessionAffinity="ClientIP",
                  sessionAffinityConfig={"clientIP": {"timeoutSeconds": 60}},
                  ports=[{"name": "http", "port": 80, "nodePort": 30080}])  # fmt: skip
    ruleset = compute_ruleset([service], {"default/web": [eps("web", [("10.0.0.1", READY)])]})
    text, _ = render(ruleset, CONFIG)
    assert "--rcheck --seconds 60 --reap" in text and "-m recent --name" in text
    np = _chain_rules(text, "TUGT-NODEPORTS")
    assert [r.split("-j ")[-1].split("-")[1] for r in np] == ["MARK", "SVC"]


def test_stale_chains_are_deleted_and_cleanup_removes_all() -> None:
    big = compute_ruleset([svc()], {"default/web": [eps("web", [("10.0.0.1", READY)])]})
    _, first = render(big, CONFIG)
    text, second = render(compute_ruleset([], {}), CONFIG, stale=first)
    gone = first["nat"] - second["nat"]
    assert gone and all(f"-X {c}" in text for c in gone)
    save = "*nat\n:PREROUTING ACCEPT [0:0]\n:TUGT-SERVICES - [0:0]\n*filter\n:TUGT-FILTER - [0:0]\n"
    found = existing_chains(save, "TUGT")
    assert found == {"nat": {"TUGT-SERVICES"}, "filter": {"TUGT-FILTER"}}
    assert "-X TUGT-SERVICES" in render_cleanup(found)


async def test_compute_only_backend_keeps_text() -> None:
    backend = ComputeOnlyBackend(config=CONFIG)
    ruleset = compute_ruleset([svc()], {"default/web": [eps("web", [("10.0.0.1", READY)])]})
    await backend.apply(ruleset)
    assert backend.ruleset == ruleset and "10.0.0.1:8080" in backend.text


async def test_compute_only_backend_writes_its_rules_file(tmp_path: Path) -> None:
    path = tmp_path / "nodes" / "proxy-rules"  # the directory need not exist yet
    backend = ComputeOnlyBackend(render_text=False, config=CONFIG, rules_file=str(path))
    ruleset = compute_ruleset([svc()], {"default/web": [eps("web", [("10.0.0.1", READY)])]})
    await backend.apply(ruleset)
    assert path.read_text() == backend.text and "10.0.0.1:8080" in backend.text
    await backend.apply(compute_ruleset([svc()], {}))
    assert "10.0.0.1:8080" not in path.read_text(), "replaced, not appended"
    await backend.cleanup()
    assert not path.exists()


@pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("iptables-restore"),
    reason="needs root, unshare and iptables-restore",
)
def test_kernel_accepts_the_rendering_in_a_private_netns() -> None:
    """The whole text, applied twice (second time with stale chains) in a fresh network
    namespace, is accepted by the kernel: syntax and chain references are right."""
    service = svc(type="NodePort", sessionAffinity="ClientIP",
                  ports=[{"name": "http", "port": 80, "nodePort": 30080}])  # fmt: skip
    empty = svc("empty", clusterIP="10.96.0.30")
    full = compute_ruleset(
        [service, empty], {"default/web": [eps("web", [("10.0.0.1", READY), ("10.0.0.2", READY)])]}
    )
    first, declared = render(full, CONFIG)
    second, _ = render(compute_ruleset([empty], {}), CONFIG, stale=declared)
    script = (
        "set -e; ip link set lo up; "
        "printf '%s' \"$1\" | iptables-restore --noflush -w; "
        "printf '%s' \"$2\" | iptables-restore --noflush -w; "
        "iptables-save -t nat | grep -c '^:TUGT-' ; iptables-save -t filter | grep -c REJECT"
    )
    out = subprocess.run(
        ["unshare", "--net", "sh", "-c", script, "sh", first, second],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    nat_chains, rejects = (int(x) for x in out.stdout.split())
    assert nat_chains == 4  # only the base chains are left after the second apply
    assert rejects == 2  # the empty service's port and the CIDR safety net


def test_proxier_incremental_compute_equals_the_pure_function() -> None:
    from kubelet.proxy.proxier import SERVICES, SLICES, Proxier
    from machinery.informer import InformerFactory

    factory = InformerFactory(client=None)  # type: ignore[arg-type]  # never started
    proxier = Proxier(factory, ComputeOnlyBackend())
    services = factory.informer(SERVICES).store
    slices = factory.informer(SLICES).store

    def put(store: Any, obj: Obj, rv: int) -> None:
        obj["metadata"]["resourceVersion"] = str(rv)
        store.put(obj)

    names = ["b", "a-b", "a", "c"]
    for i, name in enumerate(names):
        put(services, svc(name, clusterIP=f"10.96.0.{30 + i}"), 1)
        put(slices, eps(name, [(f"10.0.{i}.1", READY)]), 1)

    def expected() -> Any:
        by_key: dict[str, list[Obj]] = {}
        for s in slices.list():
            by_key.setdefault(f"default/{s['metadata']['labels']['kubernetes.io/service-name']}",
                              []).append(s)  # fmt: skip
        return compute_ruleset(services.list(), by_key)

    assert proxier.compute() == expected()
    put(slices, eps("a", [("10.0.9.9", READY)]), 2)  # a change with a new resourceVersion
    put(services, svc("d", clusterIP="10.96.0.40"), 3)
    services.delete("default/b")
    got = proxier.compute()
    assert got == expected()
    assert got.find("10.96.0.32", 80).endpoints == (("10.0.9.9", 8080),)

"""The iptables backend: a :class:`~kubelet.proxy.rules.Ruleset` as ``iptables-restore`` input,
and the kernel programming around it.

Layout (``P`` is the chain prefix, ``TUG`` by default; tests use their own so they never touch
a running cluster's chains)::

  nat PREROUTING, OUTPUT ─▶ P-SERVICES ─┬ -d ClusterIP -p tcp --dport 80 ─▶ P-SVC-<hash>
                                        └ -m addrtype --dst-type LOCAL   ─▶ P-NODEPORTS
  P-NODEPORTS:  --dport <nodePort> ─▶ P-MARK-MASQ, then ─▶ P-SVC-<hash>
  P-SVC-<hash>: [! -s clusterCIDR ─▶ P-MARK-MASQ] [affinity: -m recent --rcheck ─▶ P-SEP-x]
                -m statistic --probability 1/n ─▶ P-SEP-<hash> ... last one unconditional
  P-SEP-<hash>: -s <own ip> ─▶ P-MARK-MASQ (hairpin); DNAT --to-destination ip:port
                [-m recent --set for ClientIP affinity]
  nat POSTROUTING ─▶ P-POSTROUTING: marked (0x4000) packets are MASQUERADEd
  filter INPUT, FORWARD, OUTPUT (new connections) ─▶ P-FILTER: REJECT Service ports without
                endpoints, and — the safety net — anything still addressed to the service
                CIDR that is not a local address (never let a ClusterIP leak to a default route)

Contract: :meth:`IptablesBackend.apply` replaces every ``P-*`` chain of both tables in ONE
``iptables-restore --noflush`` run (one kernel transaction per table: there is no moment with
no rules); chains of the previous ruleset that are no longer needed are deleted in the same
run. The jumps from the built-in chains are added once (idempotently) after the first apply and
removed, with every ``P-*`` chain, by :meth:`IptablesBackend.cleanup`.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import logging
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from .rules import Ruleset, ServicePortRule

log = logging.getLogger(__name__)

MASQ_MARK = "0x4000"
MAX_CHAIN = 28  # iptables chain names are at most 28 characters


@dataclass(frozen=True)
class IptablesConfig:
    prefix: str = "TUG"
    cluster_cidr: str | None = (
        "10.244.0.0/16"  # traffic from elsewhere to a ClusterIP is masqueraded
    )
    service_cidr: str | None = "10.96.0.0/16"  # for the safety net (None: no net)
    iptables_restore: str = "iptables-restore"
    iptables: str = "iptables"
    iptables_save: str = "iptables-save"
    localnet_interfaces: tuple[str, ...] = field(default=())  # route_localnet=1 (NodePort on 127/8)

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[A-Z][A-Z0-9]{0,8}", self.prefix):
            raise ValueError("prefix: 1-9 upper-case letters/digits, starting with a letter")


def _hash(text: str) -> str:
    return base64.b32encode(hashlib.sha256(text.encode()).digest()).decode()[:16]


def svc_chain(prefix: str, rule: ServicePortRule) -> str:
    return f"{prefix}-SVC-{_hash(rule.key + '/' + rule.protocol)}"


def sep_chain(prefix: str, rule: ServicePortRule, ip: str, port: int) -> str:
    return f"{prefix}-SEP-{_hash(f'{rule.key}/{rule.protocol}/{ip}:{port}')}"


def base_chains(prefix: str) -> dict[str, list[str]]:
    return {
        "nat": [f"{prefix}-SERVICES", f"{prefix}-NODEPORTS", f"{prefix}-POSTROUTING",
                f"{prefix}-MARK-MASQ"],
        "filter": [f"{prefix}-FILTER"],
    }  # fmt: skip


def hooks(prefix: str) -> list[tuple[str, str, list[str]]]:
    """(table, built-in chain, rule spec) of the jumps into our chains."""
    comment = ["-m", "comment", "--comment", "tugboat service proxy"]
    new = ["-m", "conntrack", "--ctstate", "NEW"]
    return [
        ("nat", "PREROUTING", [*comment, "-j", f"{prefix}-SERVICES"]),
        ("nat", "OUTPUT", [*comment, "-j", f"{prefix}-SERVICES"]),
        ("nat", "POSTROUTING", [*comment, "-j", f"{prefix}-POSTROUTING"]),
        ("filter", "INPUT", [*new, *comment, "-j", f"{prefix}-FILTER"]),
        ("filter", "FORWARD", [*new, *comment, "-j", f"{prefix}-FILTER"]),
        ("filter", "OUTPUT", [*new, *comment, "-j", f"{prefix}-FILTER"]),
    ]


def _proto(rule: ServicePortRule) -> str:
    p = rule.protocol.lower()
    return f"-p {p} -m {p}"


def _comment(text: str) -> str:
    return f'-m comment --comment "{text}"'


@dataclass(frozen=True)
class _RuleText:
    """The lines one Service port contributes (rendered once per distinct rule and config)."""

    nat_chains: tuple[str, ...]
    nat: tuple[str, ...]
    nodeports: tuple[str, ...]
    filter: tuple[str, ...]


@functools.lru_cache(maxsize=65536)
def _render_rule(rule: ServicePortRule, config: IptablesConfig) -> _RuleText:
    P = config.prefix
    dests = [rule.cluster_ip, *rule.external_ips]
    match = f"{_proto(rule)} --dport {rule.port}"
    if not rule.endpoints:
        filt = [
            f"-A {P}-FILTER -d {ip}/32 {match} {_comment(rule.key + ' has no endpoints')}"
            " -j REJECT --reject-with icmp-port-unreachable"
            for ip in dests
        ]
        if rule.node_port:
            filt.append(
                f"-A {P}-FILTER -m addrtype --dst-type LOCAL {_proto(rule)} --dport "
                f"{rule.node_port} {_comment(rule.key + ' has no endpoints')} "
                "-j REJECT --reject-with icmp-port-unreachable"
            )
        return _RuleText((), (), (), tuple(filt))
    svc = svc_chain(P, rule)
    chains = [svc]
    nat = [f"-A {P}-SERVICES -d {ip}/32 {match} {_comment(rule.key)} -j {svc}" for ip in dests]
    nodeports: list[str] = []
    if config.cluster_cidr:
        nat.append(
            f"-A {svc} ! -s {config.cluster_cidr} -d {rule.cluster_ip}/32 {match} -j {P}-MARK-MASQ"
        )
    if rule.node_port:
        np = f"{_proto(rule)} --dport {rule.node_port} {_comment(rule.key)}"
        nodeports.append(f"-A {P}-NODEPORTS {np} -j {P}-MARK-MASQ")
        nodeports.append(f"-A {P}-NODEPORTS {np} -j {svc}")
    seps = [(ip, port, sep_chain(P, rule, ip, port)) for ip, port in rule.endpoints]
    if rule.affinity_timeout:
        for _, _, sep in seps:
            nat.append(
                f"-A {svc} -m recent --name {sep} --rcheck --seconds "
                f"{rule.affinity_timeout} --reap -j {sep}"
            )
    n = len(seps)
    for i, (ip, port, sep) in enumerate(seps):
        chains.append(sep)
        if i < n - 1:
            nat.append(
                f"-A {svc} -m statistic --mode random --probability {1 / (n - i):.11f} -j {sep}"
            )
        else:
            nat.append(f"-A {svc} -j {sep}")
        nat.append(f"-A {sep} -s {ip}/32 -j {P}-MARK-MASQ")
        recent = f"-m recent --name {sep} --set " if rule.affinity_timeout else ""
        nat.append(f"-A {sep} {_proto(rule)} {recent}-j DNAT --to-destination {ip}:{port}")
    return _RuleText(tuple(chains), tuple(nat), tuple(nodeports), ())


def clear_render_cache() -> None:
    """Forget the memoised per-rule text (benchmarks measure a cold render with it)."""
    _render_rule.cache_clear()


def render(
    ruleset: Ruleset, config: IptablesConfig, stale: dict[str, set[str]] | None = None
) -> tuple[str, dict[str, set[str]]]:
    """Pure: the ``iptables-restore`` input for ``ruleset`` and the chains it declares per table.

    ``stale`` (chains declared by the previous render) are deleted unless still used. Each
    rule's lines are memoised, so re-rendering after a small change costs little more than
    joining strings."""
    P = config.prefix
    chains = {t: list(cs) for t, cs in base_chains(P).items()}
    nat: list[str] = [
        f"-A {P}-POSTROUTING -m mark ! --mark {MASQ_MARK}/{MASQ_MARK} -j RETURN",
        f"-A {P}-POSTROUTING -j MARK --xor-mark {MASQ_MARK}",
        f"-A {P}-POSTROUTING {_comment('tugboat service traffic requiring SNAT')} -j MASQUERADE",
        f"-A {P}-MARK-MASQ -j MARK --or-mark {MASQ_MARK}",
    ]
    filt: list[str] = []
    nodeports: list[str] = []
    for rule in ruleset.services:
        text = _render_rule(rule, config)
        chains["nat"].extend(text.nat_chains)
        nat.extend(text.nat)
        nodeports.extend(text.nodeports)
        filt.extend(text.filter)
    nat.extend(nodeports)
    nat.append(f"-A {P}-SERVICES -m addrtype --dst-type LOCAL -j {P}-NODEPORTS")
    if config.service_cidr:
        filt.append(
            f"-A {P}-FILTER -m addrtype ! --dst-type LOCAL -d {config.service_cidr} "
            f"{_comment('no such service')} -j REJECT --reject-with icmp-net-unreachable"
        )
    declared = {t: set(cs) for t, cs in chains.items()}
    lines: list[str] = []
    for table, body in (("nat", nat), ("filter", filt)):
        lines.append(f"*{table}")
        lines += [f":{c} - [0:0]" for c in chains[table]]
        lines += body
        gone = sorted((stale or {}).get(table, set()) - declared[table])
        lines += [f":{c} - [0:0]" for c in gone]  # flushed first, so nothing refers to them
        lines += [f"-X {c}" for c in gone]
        lines.append("COMMIT")
    return "\n".join(lines) + "\n", declared


def render_cleanup(chains: dict[str, set[str]]) -> str:
    """``iptables-restore --noflush`` input that flushes and deletes ``chains``."""
    lines: list[str] = []
    for table in ("nat", "filter"):
        names = sorted(chains.get(table, set()))
        if not names:
            continue
        lines.append(f"*{table}")
        lines += [f":{c} - [0:0]" for c in names]
        lines += [f"-X {c}" for c in names]
        lines.append("COMMIT")
    return "\n".join(lines) + "\n" if lines else ""


def existing_chains(save_output: str, prefix: str) -> dict[str, set[str]]:
    """Our chains in ``iptables-save`` output, per table."""
    out: dict[str, set[str]] = {}
    table = ""
    for line in save_output.splitlines():
        if line.startswith("*"):
            table = line[1:].strip()
        elif line.startswith(f":{prefix}-"):
            out.setdefault(table, set()).add(line[1:].split()[0])
    return out


class IptablesError(RuntimeError):
    pass


class IptablesBackend:
    """Programs the host's iptables (see the module docstring for the contract)."""

    def __init__(self, config: IptablesConfig | None = None) -> None:
        self.config = config or IptablesConfig()
        self.chains: dict[str, set[str]] | None = None  # what the kernel has, as far as we know
        self._hooked = False
        self.last_text = ""

    @staticmethod
    def available(config: IptablesConfig | None = None) -> bool:
        cfg = config or IptablesConfig()
        return shutil.which(cfg.iptables_restore) is not None

    async def _run(
        self, *cmd: str, stdin: str | None = None, check: bool = True
    ) -> tuple[int, str]:
        proc = await asyncio.create_subprocess_exec(
            *cmd,
            stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await proc.communicate(stdin.encode() if stdin is not None else None)
        if check and proc.returncode != 0:
            raise IptablesError(f"{' '.join(cmd[:3])}: {err.decode().strip() or out.decode()}")
        return proc.returncode or 0, out.decode()

    async def _known_chains(self) -> dict[str, set[str]]:
        if self.chains is None:
            found: dict[str, set[str]] = {}
            for table in ("nat", "filter"):
                _, out = await self._run(self.config.iptables_save, "-t", table)
                for t, names in existing_chains(out, self.config.prefix).items():
                    found.setdefault(t, set()).update(names)
            self.chains = found
        return self.chains

    async def apply(self, ruleset: Ruleset) -> None:
        stale = await self._known_chains()
        text, declared = render(ruleset, self.config, stale)
        await self._run(self.config.iptables_restore, "--noflush", "-w", stdin=text)
        self.chains = declared
        self.last_text = text
        if not self._hooked:
            await self._ensure_hooks()
            self._hooked = True
        self._set_route_localnet()

    async def _ensure_hooks(self) -> None:
        ipt = self.config.iptables
        for table, chain, spec in hooks(self.config.prefix):
            code, _ = await self._run(ipt, "-w", "-t", table, "-C", chain, *spec, check=False)
            if code != 0:
                await self._run(ipt, "-w", "-t", table, "-I", chain, "1", *spec)

    def _set_route_localnet(self) -> None:
        """route_localnet=1 on the configured interfaces that exist (a node's bridge appears
        with its first pod, so this runs on every apply; it is idempotent)."""
        for iface in self.config.localnet_interfaces:
            path = Path("/proc/sys/net/ipv4/conf", iface, "route_localnet")
            try:
                if path.read_text().strip() != "1":
                    path.write_text("1")
            except FileNotFoundError:
                continue  # not created yet
            except OSError as e:
                log.warning("cannot set route_localnet on %s: %s", iface, e)

    async def cleanup(self) -> None:
        """Remove the jumps and every chain with our prefix (also ones left by a crash)."""
        ipt = self.config.iptables
        for table, chain, spec in hooks(self.config.prefix):
            while (await self._run(ipt, "-w", "-t", table, "-D", chain, *spec, check=False))[
                0
            ] == 0:
                pass
        self.chains = None
        text = render_cleanup(await self._known_chains())
        if text:
            await self._run(self.config.iptables_restore, "--noflush", "-w", stdin=text)
        self.chains = {}
        self._hooked = False

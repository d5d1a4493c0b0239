"""Allocators for Service addresses: ClusterIPs from the service CIDR, node ports from a range.

They follow Kubernetes' ``ipallocator`` and ``portallocator``: :meth:`allocate` takes a given
value (fails with :class:`NotInRange` or :class:`AlreadyAllocated`), :meth:`allocate_next` the
next free one (fails with :class:`RangeFull`), :meth:`release` gives one back, and the error
texts are Kubernetes' own. An allocator only holds a set of taken values: which values that set
must contain (stored Services, writes in flight) is the caller's business
(:class:`apiserver.strategies.ServiceStrategy`).

Automatic allocation walks the range from where it last stopped, so a value just released is
not handed out again at once. In the CIDR, the network and broadcast addresses are never
allocated, and the first and tenth addresses (the ``kubernetes`` Service and, by convention,
cluster DNS) only when asked for by value.
"""

from __future__ import annotations

import ipaddress

DEFAULT_SERVICE_CIDR = "10.96.0.0/16"
DEFAULT_NODE_PORTS = "30000-32767"


class AllocationError(Exception):
    """A value could not be allocated; ``str()`` is Kubernetes' wording."""


class RangeFull(AllocationError):
    def __init__(self) -> None:
        super().__init__("range is full")


class AlreadyAllocated(AllocationError):
    def __init__(self, what: str) -> None:
        super().__init__(f"provided {what} is already allocated")


class NotInRange(AllocationError):
    pass


class _IntRange:
    """Integers ``first..last``; ``reserved`` ones are only handed out by value."""

    def __init__(self, first: int, last: int, reserved: frozenset[int] = frozenset()) -> None:
        self.first, self.last, self.reserved = first, last, reserved
        self.taken: set[int] = set()
        self._cursor = first

    def __contains__(self, value: int) -> bool:
        return self.first <= value <= self.last

    def _allocate(self, value: int, what: str) -> None:
        if value in self.taken:
            raise AlreadyAllocated(what)
        self.taken.add(value)

    def _allocate_next(self) -> int:
        size = self.last - self.first + 1
        for step in range(size):
            value = self.first + (self._cursor - self.first + step) % size
            if value not in self.taken and value not in self.reserved:
                self.taken.add(value)
                self._cursor = value + 1 if value < self.last else self.first
                return value
        raise RangeFull()

    def free(self) -> int:
        """How many values :meth:`_allocate_next` could still hand out."""
        return self.last - self.first + 1 - len(self.taken | self.reserved)


class IPAllocator(_IntRange):
    """ClusterIPs from an IPv4 or IPv6 CIDR (``--service-cluster-ip-range``)."""

    def __init__(self, cidr: str = DEFAULT_SERVICE_CIDR) -> None:
        self.network = ipaddress.ip_network(cidr)
        if self.network.num_addresses < 4:
            raise ValueError(f"{cidr} is too small for Services (needs at least 4 addresses)")
        first = int(self.network.network_address) + 1
        last = int(self.network.broadcast_address) - 1
        super().__init__(first, last, frozenset(x for x in (first, first + 9) if x <= last))

    @property
    def kubernetes_ip(self) -> str:
        """The address of the ``kubernetes`` Service: the first of the range."""
        return str(ipaddress.ip_address(self.first))

    def allocate(self, ip: str) -> None:
        value = int(ipaddress.ip_address(ip))
        if value not in self:
            raise NotInRange(
                f"the provided IP ({ip}) is not in the valid range. The range of valid IPs is "
                f"{self.network}"
            )
        self._allocate(value, "IP")

    def allocate_next(self) -> str:
        return str(ipaddress.ip_address(self._allocate_next()))

    def hold(self, ip: str) -> None:
        """Record an address a stored Service has (no checks: it is taken, whatever it is)."""
        value = int(ipaddress.ip_address(ip))
        if value in self:
            self.taken.add(value)

    def release(self, ip: str) -> None:
        self.taken.discard(int(ipaddress.ip_address(ip)))


class PortAllocator(_IntRange):
    """Node ports from a range such as ``30000-32767`` (``--service-node-port-range``)."""

    def __init__(self, ports: str = DEFAULT_NODE_PORTS) -> None:
        first, last = parse_port_range(ports)
        super().__init__(first, last)

    @property
    def text(self) -> str:
        return f"{self.first}-{self.last}"

    def allocate(self, port: int) -> None:
        if port not in self:
            raise NotInRange(
                f"provided port is not in the valid range. The range of valid ports is {self.text}"
            )
        self._allocate(port, "port")

    def allocate_next(self) -> int:
        return self._allocate_next()

    def hold(self, port: int) -> None:
        """Record a port a stored Service has."""
        if port in self:
            self.taken.add(port)

    def release(self, port: int) -> None:
        self.taken.discard(port)


def parse_port_range(text: str) -> tuple[int, int]:
    """``30000-32767`` (or a single port) as (first, last); ValueError when it is not one."""
    low, sep, high = text.strip().partition("-")
    try:
        first, last = int(low), int(high) if sep else int(low)
    except ValueError:
        raise ValueError(f"{text!r} is not a port range such as 30000-32767") from None
    if not 1 <= first <= last <= 65535:
        raise ValueError(f"{text!r} is not a port range within 1-65535")
    return first, last

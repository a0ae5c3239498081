"""Name resolution that refuses addresses the server may not fetch from (for URL previews).

Checking a host's addresses before fetching leaves a gap: the HTTP client resolves the name again
and a hostile DNS server can answer differently the second time (DNS rebinding). Here the check sits
inside the resolver the HTTP client connects with, so the addresses it filters are exactly the ones
connected to. IP literals go through the resolver too, so they are checked the same way.
"""

from __future__ import annotations

import ipaddress
from typing import Any, Callable, Sequence

from twisted.internet.interfaces import (
    IAddress,
    IHostnameResolver,
    IHostResolution,
    IReactorPluggableNameResolver,
    IResolutionReceiver,
)
from zope.interface import implementer, providedBy
from zope.interface.declarations import directlyProvides

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class AddressPolicy:
    """Public unicast addresses are allowed; private, loopback, link-local... only when whitelisted."""

    def __init__(self, whitelist: Sequence[str]) -> None:
        self._whitelist = [ipaddress.ip_network(cidr, strict=False) for cidr in whitelist]

    def allows(self, ip: IPAddress) -> bool:
        if any(ip in net for net in self._whitelist):
            return True
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            return self.allows(ip.ipv4_mapped)
        return ip.is_global and not ip.is_multicast

    def allows_host(self, host: str) -> bool:
        try:
            return self.allows(ipaddress.ip_address(host.split("%", 1)[0]))
        except ValueError:
            return False


@implementer(IResolutionReceiver)
class _FilteringReceiver:
    def __init__(self, receiver: Any, policy: AddressPolicy, on_refused: Callable[[str], None]) -> None:
        self._receiver = receiver
        self._policy = policy
        self._on_refused = on_refused

    def resolutionBegan(self, resolution: IHostResolution) -> None:
        self._receiver.resolutionBegan(resolution)

    def addressResolved(self, address: IAddress) -> None:
        host = getattr(address, "host", None)
        if isinstance(host, str) and self._policy.allows_host(host):
            self._receiver.addressResolved(address)
        else:
            self._on_refused(str(host))

    def resolutionComplete(self) -> None:
        self._receiver.resolutionComplete()


@implementer(IHostnameResolver)
class GuardedResolver:
    """Wraps a resolver, passing on only the addresses `policy` allows; remembers what it refused."""

    def __init__(self, resolver: Any, policy: AddressPolicy) -> None:
        self._resolver = resolver
        self._policy = policy
        self.refused: list[str] = []

    def resolveHostName(self, resolutionReceiver: Any, hostName: str, portNumber: int = 0,
                        addressTypes: Any = None, transportSemantics: str = "TCP") -> Any:
        self._resolver.resolveHostName(
            _FilteringReceiver(resolutionReceiver, self._policy, self.refused.append),
            hostName, portNumber, addressTypes, transportSemantics,
        )
        return resolutionReceiver


class GuardedReactor:
    """The real reactor, except that names resolve through a `GuardedResolver`.

    Give it to an `Agent`: every connection the agent makes (each redirect hop too) goes to an
    address the policy allowed.
    """

    def __init__(self, reactor: Any, resolver: GuardedResolver) -> None:
        self._reactor = reactor
        self.nameResolver = resolver
        directlyProvides(self, *providedBy(reactor), IReactorPluggableNameResolver)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._reactor, name)

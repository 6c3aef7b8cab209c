"""Who is asking: the client id that rate limits, login throttling and the question log use.

Without `ASKTA_TRUST_PROXY_HEADERS` it is the peer address, whatever the headers say.
Behind a proxy, X-Forwarded-For is read only when the peer is one of
`ASKTA_TRUSTED_PROXIES`, and then from the right: each proxy appends the address it
saw, so the rightmost hop that is not a trusted proxy is the client. Everything to its
left was written by the client and is ignored (uvicorn's proxy_headers does the same).
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from fastapi import Request

from server.config import Settings

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def client_id(request: Request) -> str:
    """Who is asking, for rate limits and the question log: the peer address, or behind a
    trusted proxy the rightmost X-Forwarded-For hop that is not a trusted proxy."""
    settings: Settings = request.app.state.settings
    peer = request.client.host if request.client else "unknown"
    if not settings.trust_proxy_headers:
        return peer
    trusted = _TrustedProxies.of(settings.trusted_proxies)
    if not trusted.contains(peer):
        return peer
    hops = [hop.strip() for value in request.headers.getlist("x-forwarded-for")
            for hop in value.split(",") if hop.strip()]
    if not hops:
        return peer
    for hop in reversed(hops):
        if not trusted.contains(hop):
            return hop
    return hops[0]  # every hop is a proxy: the first one is the client


class _TrustedProxies:
    """Addresses, networks and literal names (a unix socket) from a comma-separated list;
    "*" trusts everyone (only for a server no client can reach directly)."""

    def __init__(self, spec: str):
        self.everyone = False
        self.networks: list[Network] = []
        self.literals: set[str] = set()
        for item in (s.strip() for s in spec.split(",")):
            if item == "*":
                self.everyone = True
            elif item:
                try:
                    self.networks.append(ipaddress.ip_network(item, strict=False))
                except ValueError:
                    self.literals.add(item)

    @staticmethod
    @lru_cache(maxsize=8)
    def of(spec: str) -> _TrustedProxies:
        return _TrustedProxies(spec)

    def contains(self, host: str) -> bool:
        if self.everyone or host in self.literals:
            return True
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in net for net in self.networks)

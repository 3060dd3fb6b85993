"""Outbound addresses a tenant can set (the Cal.com `base_url`): checked twice.

When saved, `check_outbound_url` wants `https`, a host on OUTBOUND_ALLOWED_HOSTS, no
credentials in the URL and no private IP literal; it does no DNS lookup (a host that does not
resolve yet is still saved). When connecting, `OutboundTransport` resolves the host itself,
refuses the connection if ANY resolved address is not public (loopback, RFC 1918, CGNAT,
link-local and cloud metadata, ULA, multicast, reserved, IPv4 embedded in IPv6) and connects to
exactly the address it checked: no second lookup a DNS rebinding could answer differently.
TLS still verifies and sends SNI for the hostname (httpcore starts TLS with the URL's host).
ALLOW_PRIVATE_OUTBOUND_URLS=true (refused in production) lifts the address and allow-list
checks for local fakes on http://127.0.0.1.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import weakref
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import httpcore
import httpx

from shared.errors import OutboundUrlRefused
from shared.observability.tracing import outbound_limits, traced_transport

if TYPE_CHECKING:
    from shared.config import Settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[str]]]
"""Resolves (host, port) to IP address strings; injectable for tests."""

_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_GUARDED: weakref.WeakSet[httpx.AsyncClient] = weakref.WeakSet()


class OutboundAddressRefused(Exception):
    """A connection the guard refused; `reason` is short and safe to show a tenant."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _embedded_v4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def address_refusal(address: str | IPAddress) -> str | None:
    """Why `address` is not a public unicast address (None when it is one)."""
    ip = ipaddress.ip_address(address) if isinstance(address, str) else address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.scope_id:
            return "address not allowed (scoped IPv6)"
        embedded = _embedded_v4(ip)
        if embedded is not None:
            return address_refusal(embedded)
    if ip.is_unspecified:
        return "address not allowed (unspecified)"
    if ip.is_loopback:
        return "address not allowed (loopback)"
    if ip.is_link_local:
        return "address not allowed (link-local or metadata)"
    if ip.is_multicast:
        return "address not allowed (multicast)"
    if isinstance(ip, ipaddress.IPv4Address) and ip in _CGNAT:
        return "address not allowed (shared address space)"
    if ip.is_private:
        return "address not allowed (private network)"
    if ip.is_reserved or not ip.is_global:
        return "address not allowed (reserved)"
    return None


def allowed_host_patterns(settings: Settings) -> list[str]:
    """OUTBOUND_ALLOWED_HOSTS as lower-case entries ("*.example.com" admits subdomains)."""
    entries = (
        item.strip().lower().rstrip(".") for item in settings.outbound_allowed_hosts.split(",")
    )
    return [entry for entry in entries if entry]


def host_on_list(host: str, patterns: Iterable[str]) -> bool:
    """Whether `host` equals an entry, or is a subdomain of a "*.domain" entry."""
    host = host.lower().rstrip(".")
    for pattern in patterns:
        if pattern.startswith("*."):
            if host.endswith(pattern[1:]) and len(host) > len(pattern) - 1:
                return True
        elif host == pattern:
            return True
    return False


def _ip_literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def check_outbound_url(url: str, settings: Settings, *, field: str = "base_url") -> str:
    """The URL without a trailing slash, or OutboundUrlRefused (422) naming why. No DNS."""

    def refuse(reason: str) -> OutboundUrlRefused:
        return OutboundUrlRefused(f"{field} refused: {reason}", field=field)

    allow_private = settings.allow_private_outbound_urls
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a malformed port
    except ValueError:
        raise refuse("not a valid URL") from None
    schemes = ("https", "http") if allow_private else ("https",)
    if parts.scheme.lower() not in schemes:
        raise refuse("only https URLs are allowed")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise refuse("credentials in the URL are not allowed")
    if parts.query or parts.fragment:
        raise refuse("a base URL has no query or fragment")
    host = (parts.hostname or "").rstrip(".")
    if not host or any(c.isspace() for c in url):
        raise refuse("the URL names no host")
    if allow_private:
        return url.rstrip("/")
    ip = _ip_literal(host)
    if ip is not None:
        reason = address_refusal(ip)
        if reason is not None:
            raise refuse(reason)
    if not host_on_list(host, allowed_host_patterns(settings)):
        raise refuse(f"host {host} is not on the allowed list (OUTBOUND_ALLOWED_HOSTS)")
    return url.rstrip("/")


async def system_resolver(host: str, port: int) -> list[str]:
    """Every address the system resolver gives for (host, port), in its order."""
    infos = await asyncio.get_running_loop().getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """Resolves, checks every address, then connects to a checked address (never by name)."""

    def __init__(self, *, allow_private: bool, resolver: Resolver | None = None) -> None:
        self.allow_private = allow_private
        self.resolver = resolver or system_resolver
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(  # the signature is httpcore's AsyncNetworkBackend's
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            async with asyncio.timeout(timeout):
                addresses = await self.resolver(host, port)
        except TimeoutError:
            raise httpcore.ConnectTimeout("name resolution timed out") from None
        except OSError as exc:  # socket.gaierror: worth retrying like any connect failure
            raise httpcore.ConnectError("name resolution failed") from exc
        if not addresses:
            raise httpcore.ConnectError("name resolution failed")
        if not self.allow_private:
            for address in addresses:
                reason = address_refusal(address)
                if reason is not None:
                    raise OutboundAddressRefused(reason)
        failure: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    address,
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise OutboundAddressRefused("address not allowed (unix socket)")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class OutboundTransport(httpx.AsyncHTTPTransport):
    """httpx's pooled transport whose connections all go through `GuardedBackend`."""

    def __init__(
        self,
        *,
        allow_private: bool,
        limits: httpx.Limits,
        resolver: Resolver | None = None,
        verify: bool = True,
    ) -> None:
        super().__init__(limits=limits, verify=verify, trust_env=False)
        # No proxy (trust_env=False): the guard must see the address actually connected to.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(verify=verify, trust_env=False),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=GuardedBackend(allow_private=allow_private, resolver=resolver),
        )


def outbound_client(
    settings: Settings,
    *,
    timeout: httpx.Timeout,
    limits: httpx.Limits | None = None,
    resolver: Resolver | None = None,
) -> httpx.AsyncClient:
    """A pooled, traced client for tenant-settable URLs; every connection is guarded."""
    transport = OutboundTransport(
        allow_private=settings.allow_private_outbound_urls,
        limits=limits or outbound_limits(50),
        resolver=resolver,
    )
    client = httpx.AsyncClient(timeout=timeout, transport=traced_transport(transport))
    _GUARDED.add(client)
    return client


def is_guarded(http: httpx.AsyncClient) -> bool:
    """Whether `http` was made by `outbound_client` (so its connections are checked)."""
    return http in _GUARDED

"""What is kept of a client's IP address (pure).

By default nothing (STORE_CLIENT_IP off). When stored, the address is cut to a
network prefix (CLIENT_IP_TRUNCATION, /24 for IPv4 and /48 for IPv6 unless set
otherwise): enough to tell a misbehaving network apart, not a household.
"""

from __future__ import annotations

import ipaddress
from typing import Protocol


class _Address(Protocol):
    host: str


class HasClient(Protocol):
    """What client_host reads of a Starlette request (typed structurally: this module stays free of HTTP
    code, so settings, which parses CLIENT_IP_TRUNCATION here, and the Dagster code location never import it)."""

    @property
    def client(self) -> _Address | None: ...


def parse_truncation(value: str) -> tuple[int, int]:
    """`"24,48"` → (24, 48): the IPv4 and IPv6 prefix lengths kept. `"none"` keeps whole addresses."""
    text = value.strip().lower()
    if text in ("none", "off", "full"):
        return 32, 128
    parts = [p.strip().lstrip("/") for p in text.split(",")]
    try:
        v4, v6 = (int(p) for p in parts)
    except ValueError:
        raise ValueError(
            f"CLIENT_IP_TRUNCATION must be 'V4,V6' prefix lengths (e.g. 24,48) or none, got {value!r}"
        ) from None
    if not (0 <= v4 <= 32 and 0 <= v6 <= 128):
        raise ValueError(f"CLIENT_IP_TRUNCATION prefixes must be 0-32 (IPv4) and 0-128 (IPv6), got {value!r}")
    return v4, v6


def client_host(request: HasClient) -> str | None:
    """The client's address as uvicorn determined it: behind a proxy whose address is trusted
    (FORWARDED_ALLOW_IPS, 127.0.0.1 by default), the one its X-Forwarded-For names."""
    return request.client.host if request.client else None


def stored_client_ip(host: str | None, *, store: bool, prefixes: tuple[int, int]) -> str | None:
    """The address to store for a client `host`: None when not stored or not an IP address."""
    if not store or not host:
        return None
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])  # drop an IPv6 zone id
    except ValueError:
        return None  # a unix socket or a test client name: nothing worth keeping
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    prefix = prefixes[0] if address.version == 4 else prefixes[1]
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False).network_address)

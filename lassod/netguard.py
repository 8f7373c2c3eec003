"""Outbound address guard: which IP addresses a webhook delivery may connect to.

A webhook sender makes requests to URLs its users choose, so without a guard
anyone with an API key could make lassod reach loopback services, the private
network or a cloud metadata service. `AddressPolicy.blocked_reason` decides
for one address; `parse_literal_host` reads a URL host written as an address
in any form that resolvers accept.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import unquote

from lassod.config import SecuritySettings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Instance metadata, credential and DNS services of cloud providers. They
# stay blocked with allow_private_targets unless allowed_cidrs names them.
METADATA_NETWORKS = tuple(
    ipaddress.ip_network(text)
    for text in (
        "169.254.169.254/32",  # AWS, Azure, GCP, OpenStack, Oracle metadata
        "169.254.169.253/32",  # AWS DNS resolver
        "169.254.169.123/32",  # AWS time service
        "169.254.170.2/32",  # AWS ECS task credentials
        "169.254.170.23/32",  # AWS EKS Pod Identity agent
        "100.100.100.200/32",  # Alibaba Cloud metadata
        "192.0.0.192/32",  # Oracle Cloud Classic metadata
        "fd00:ec2::254/128",  # AWS metadata over IPv6
        "fd00:ec2::253/128",  # AWS DNS resolver over IPv6
        "fd00:ec2::123/128",  # AWS time service over IPv6
        "fd00:ec2::23/128",  # AWS EKS Pod Identity agent over IPv6
        "fd20:ce::254/128",  # Google Cloud metadata over IPv6
    )
)

# Categories that allow_private_targets opens; all others need allowed_cidrs.
PRIVATE_CATEGORIES = frozenset(
    {"loopback", "private", "carrier_grade_nat", "link_local"}
)

# Checked in order, so a narrower range listed first wins over a wider one.
_IPV4_CATEGORIES: tuple[tuple[str, str], ...] = (
    ("255.255.255.255/32", "broadcast"),
    ("0.0.0.0/8", "unspecified"),
    ("127.0.0.0/8", "loopback"),
    ("10.0.0.0/8", "private"),
    ("172.16.0.0/12", "private"),
    ("192.168.0.0/16", "private"),
    ("100.64.0.0/10", "carrier_grade_nat"),
    ("169.254.0.0/16", "link_local"),
    ("192.0.2.0/24", "documentation"),
    ("198.51.100.0/24", "documentation"),
    ("203.0.113.0/24", "documentation"),
    ("192.0.0.0/24", "reserved"),
    ("192.88.99.0/24", "reserved"),
    ("198.18.0.0/15", "reserved"),
    ("224.0.0.0/4", "multicast"),
    ("240.0.0.0/4", "reserved"),
)
_IPV6_CATEGORIES: tuple[tuple[str, str], ...] = (
    ("::/128", "unspecified"),
    ("::1/128", "loopback"),
    ("64:ff9b:1::/48", "private"),
    ("100::/64", "reserved"),
    ("2001:db8::/32", "documentation"),
    ("3fff::/20", "documentation"),
    ("2001:10::/28", "reserved"),
    ("2001:20::/28", "reserved"),
    ("fc00::/7", "private"),
    ("fe80::/10", "link_local"),
    ("fec0::/10", "private"),
    ("ff00::/8", "multicast"),
)
_TABLES = {
    4: tuple((ipaddress.ip_network(n), c) for n, c in _IPV4_CATEGORIES),
    6: tuple((ipaddress.ip_network(n), c) for n, c in _IPV6_CATEGORIES),
}
_GLOBAL_UNICAST = ipaddress.ip_network("2000::/3")
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_HEX = re.compile(r"0x[0-9a-f]+")
_OCTAL = re.compile(r"0[0-7]+")
_DECIMAL = re.compile(r"0|[1-9][0-9]*")


def category(address: IPAddress) -> str | None:
    """Return the special-purpose category of an address, or None if public.

    IPv6 forms that carry an IPv4 address (mapped, compatible, NAT64, 6to4
    and Teredo) take the category of the IPv4 address they reach.
    """
    own = _own_category(address)
    if own is not None or isinstance(address, ipaddress.IPv4Address):
        return own
    wrapped = embedded_ipv4(address)
    if wrapped:
        return next(filter(None, map(category, wrapped)), None)
    if address not in _GLOBAL_UNICAST:
        return "reserved"
    return None


def _own_category(address: IPAddress) -> str | None:
    """Return the category of the address itself, ignoring what it wraps."""
    if any(address in network for network in METADATA_NETWORKS):
        return "metadata"
    for network, name in _TABLES[address.version]:
        if address in network:
            return name
    return None


def embedded_ipv4(address: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """Return the IPv4 addresses an IPv6 address wraps, if it wraps any."""
    if address.ipv4_mapped is not None:
        return [address.ipv4_mapped]
    if address.sixtofour is not None:
        return [address.sixtofour]
    if address.teredo is not None:
        server, client = address.teredo
        return [client, server]
    if address in _IPV4_COMPATIBLE or address in _NAT64:
        return [ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)]
    return []


@dataclass(frozen=True)
class AddressPolicy:
    """The set of addresses deliveries may reach, built from [security] settings."""

    allow_private: bool = False
    allowed_networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def from_settings(cls, security: SecuritySettings) -> AddressPolicy:
        networks = tuple(ipaddress.ip_network(text) for text in security.allowed_cidrs)
        return cls(security.allow_private_targets, networks)

    def blocked_reason(self, address: IPAddress) -> str | None:
        """Return why a delivery must not connect to address, or None to allow.

        An IPv6 address that wraps IPv4 addresses is allowed when it is listed
        itself, or when the policy allows every IPv4 address it wraps.
        """
        if self._listed(address):
            return None
        found = _own_category(address)
        if found is None and isinstance(address, ipaddress.IPv6Address):
            wrapped = embedded_ipv4(address)
            if wrapped:
                return next(filter(None, map(self.blocked_reason, wrapped)), None)
            found = category(address)
        if found is None:
            return None
        if self.allow_private and found in PRIVATE_CATEGORIES:
            return None
        return found

    def _listed(self, address: IPAddress) -> bool:
        return any(
            address.version == network.version and address in network
            for network in self.allowed_networks
        )


def parse_literal_host(host: str) -> IPAddress | None:
    """Return the address a URL host denotes if it is an IP literal, else None.

    Accepts what resolvers accept besides the canonical forms: bracketed IPv6
    with a zone id, percent-encoding, a trailing dot, and the inet_aton forms
    of IPv4 (decimal `2130706433`, octal `0177.0.0.1`, hex `0x7f.0.0.1` and
    short forms such as `127.1`).
    """
    text = unquote(host).strip().lower()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    if ":" in text:
        try:
            return ipaddress.IPv6Address(text.partition("%")[0])
        except ValueError:
            return None
    return _parse_inet_aton(text.removesuffix("."))


def _parse_inet_aton(text: str) -> ipaddress.IPv4Address | None:
    parts = text.split(".")
    if not 1 <= len(parts) <= 4:
        return None
    numbers = [_parse_number(part) for part in parts]
    if any(number is None for number in numbers):
        return None
    *leading, last = [number for number in numbers if number is not None]
    if any(number > 0xFF for number in leading):
        return None
    last_bits = 8 * (4 - len(leading))
    if last >= 1 << last_bits:
        return None
    value = last
    for index, number in enumerate(leading):
        value |= number << (24 - 8 * index)
    return ipaddress.IPv4Address(value)


def _parse_number(part: str) -> int | None:
    """Parse one inet_aton component: 0x hex, leading-zero octal, or decimal."""
    if _HEX.fullmatch(part):
        return int(part[2:], 16)
    if _OCTAL.fullmatch(part):
        return int(part, 8)
    if _DECIMAL.fullmatch(part):
        return int(part)
    return None

"""The outbound address guard: address categories, literal forms and policy."""

from __future__ import annotations

import ipaddress

import pytest

from lassod.config import SecuritySettings
from lassod.netguard import AddressPolicy, category, parse_literal_host
from lassod.validation import ValidationError, target_url

DEFAULT = AddressPolicy.from_settings(SecuritySettings())
PRIVATE_OPEN = AddressPolicy.from_settings(SecuritySettings(allow_private_targets=True))

# (URL host as written, category, a CIDR range that allows exactly it)
HOSTILE_HOSTS = [
    ("127.0.0.1", "loopback", "127.0.0.0/8"),
    ("127.1", "loopback", "127.0.0.0/8"),
    ("127.0.1", "loopback", "127.0.0.0/8"),
    ("2130706433", "loopback", "127.0.0.0/8"),
    ("0177.0.0.1", "loopback", "127.0.0.0/8"),
    ("0x7f.0.0.1", "loopback", "127.0.0.0/8"),
    ("0x7f000001", "loopback", "127.0.0.0/8"),
    ("0x7F.1", "loopback", "127.0.0.0/8"),
    ("127.0.0.1.", "loopback", "127.0.0.0/8"),
    ("%31%32%37.0.0.1", "loopback", "127.0.0.0/8"),
    ("10.1.2.3", "private", "10.0.0.0/8"),
    ("172.16.0.1", "private", "172.16.0.0/12"),
    ("192.168.1.1", "private", "192.168.0.0/16"),
    ("100.64.0.1", "carrier_grade_nat", "100.64.0.0/10"),
    ("169.254.1.1", "link_local", "169.254.0.0/16"),
    ("169.254.169.254", "metadata", "169.254.169.254/32"),
    ("169.254.170.2", "metadata", "169.254.170.2/32"),
    ("100.100.100.200", "metadata", "100.100.100.200/32"),
    ("224.0.0.1", "multicast", "224.0.0.0/4"),
    ("255.255.255.255", "broadcast", "255.255.255.255/32"),
    ("0.0.0.0", "unspecified", "0.0.0.0/8"),
    ("0", "unspecified", "0.0.0.0/8"),
    ("240.0.0.1", "reserved", "240.0.0.0/4"),
    ("198.18.0.1", "reserved", "198.18.0.0/15"),
    ("192.0.2.1", "documentation", "192.0.2.0/24"),
    ("203.0.113.9", "documentation", "203.0.113.0/24"),
    ("[::1]", "loopback", "::1/128"),
    ("[::]", "unspecified", "::/128"),
    ("[fc00::1]", "private", "fc00::/7"),
    ("[fd12:3456::1]", "private", "fc00::/7"),
    ("[fe80::1]", "link_local", "fe80::/10"),
    ("[fe80::1%25eth0]", "link_local", "fe80::/10"),
    ("[fe80::1%eth0]", "link_local", "fe80::/10"),
    ("[ff02::1]", "multicast", "ff00::/8"),
    ("[2001:db8::1]", "documentation", "2001:db8::/32"),
    ("[fd00:ec2::254]", "metadata", "fd00:ec2::254/128"),
    ("[::ffff:127.0.0.1]", "loopback", "127.0.0.0/8"),
    ("[::ffff:7f00:1]", "loopback", "::ffff:7f00:0/104"),
    ("[::ffff:169.254.169.254]", "metadata", "169.254.169.254/32"),
    ("[::127.0.0.1]", "loopback", "127.0.0.0/8"),
    ("[::10.0.0.1]", "private", "::a00:0/104"),
    ("[64:ff9b::127.0.0.1]", "loopback", "127.0.0.0/8"),
    ("[64:ff9b::a9fe:a9fe]", "metadata", "64:ff9b::/96"),
    ("[2002:7f00:1::]", "loopback", "127.0.0.0/8"),
    ("[2002:c0a8:101::1]", "private", "2002::/16"),
    # Teredo: the server address follows 2001:0:, and the client address is
    # stored bit-inverted in the last 32 bits. The first wraps client
    # 127.0.0.1, the second server 10.0.0.1 with client 8.8.8.8.
    ("[2001:0:4136:e378:8000:63bf:80ff:fffe]", "loopback", "127.0.0.0/8"),
    ("[2001:0:a00:1::f7f7:f7f7]", "private", "10.0.0.0/8"),
]

PUBLIC_HOSTS = [
    "93.184.216.34",
    "8.8.8.8",
    "[2606:4700::1111]",
    "[::ffff:8.8.8.8]",
    "[64:ff9b::808:808]",
    "[2002:808:808::1]",
]


@pytest.mark.parametrize(("host", "expected", "allowing"), HOSTILE_HOSTS)
def test_hostile_host_blocked_by_default(host, expected, allowing):
    address = parse_literal_host(host)

    assert address is not None
    assert DEFAULT.blocked_reason(address) == expected


@pytest.mark.parametrize(("host", "expected", "allowing"), HOSTILE_HOSTS)
def test_hostile_host_allowed_only_by_matching_cidr(host, expected, allowing):
    address = parse_literal_host(host)
    matching = AddressPolicy(allowed_networks=(ipaddress.ip_network(allowing),))
    other = "198.51.100.0/24" if ":" not in allowing else "2001:db8:ffff::/48"
    unrelated = AddressPolicy(allowed_networks=(ipaddress.ip_network(other),))

    assert matching.blocked_reason(address) is None
    assert unrelated.blocked_reason(address) == expected


@pytest.mark.parametrize("host", PUBLIC_HOSTS)
def test_public_host_allowed(host):
    address = parse_literal_host(host)

    assert address is not None
    assert DEFAULT.blocked_reason(address) is None


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", None),
        ("10.0.0.1", None),
        ("100.64.1.1", None),
        ("169.254.1.1", None),
        ("::1", None),
        ("fd00::1", None),
        ("169.254.169.254", "metadata"),
        ("fd00:ec2::254", "metadata"),
        ("::ffff:169.254.169.254", "metadata"),
        ("0.0.0.0", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("192.0.2.1", "documentation"),
    ],
)
def test_allow_private_targets_keeps_metadata_blocked(address, reason):
    assert PRIVATE_OPEN.blocked_reason(ipaddress.ip_address(address)) == reason


def test_metadata_allowed_when_named_in_allowed_cidrs():
    policy = AddressPolicy.from_settings(
        SecuritySettings(
            allow_private_targets=True, allowed_cidrs=("169.254.169.254/32",)
        )
    )

    assert policy.blocked_reason(ipaddress.ip_address("169.254.169.254")) is None
    assert policy.blocked_reason(ipaddress.ip_address("169.254.170.2")) == "metadata"


@pytest.mark.parametrize(
    "host",
    [
        "example.com",
        "localhost",
        "1.2.3.4.5",
        "256.0.0.1",
        "0x",
        "1.0x1g",
        "08.0.0.1",
        "1_0.0.0.1",
        "[not-an-address]",
        "127.0.0.1 extra",
        "",
    ],
)
def test_host_names_are_not_literals(host):
    assert parse_literal_host(host) is None


def test_teredo_needs_both_wrapped_addresses_allowed():
    # Server 10.0.0.1, client 127.0.0.1 stored bit-inverted as 80ff:fffe.
    address = ipaddress.ip_address("2001:0:a00:1::80ff:fffe")
    server_only = AddressPolicy(allowed_networks=(ipaddress.ip_network("10.0.0.0/8"),))
    both = AddressPolicy(
        allowed_networks=(
            ipaddress.ip_network("10.0.0.0/8"),
            ipaddress.ip_network("127.0.0.0/8"),
        )
    )

    assert server_only.blocked_reason(address) == "loopback"
    assert both.blocked_reason(address) is None


def test_category_of_unallocated_ipv6_is_reserved():
    assert category(ipaddress.ip_address("4000::1")) == "reserved"


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/hook",
        "http://2130706433/hook",
        "http://0x7f.1/hook",
        "https://[::ffff:127.0.0.1]/hook",
        "https://[fe80::1%25eth0]/hook",
        "http://169.254.169.254/latest/meta-data/",
        # Full-width and circled digits, which IDNA folds to ASCII.
        "http://127\u30020\u30020\u30021:8080/hook",
        "http://\u2460\u2461\u2466.0.0.1/hook",
        "http://\u24ea:8080/hook",
    ],
)
def test_target_url_rejects_blocked_literal(url):
    with pytest.raises(ValidationError) as raised:
        target_url("webhook_url", url, SecuritySettings())

    assert raised.value.field == "webhook_url"
    assert "allowed_cidrs" in raised.value.message


@pytest.mark.parametrize(
    "url",
    [
        "http://a\u200b.example.com/hook",
        "http://\ufffd/hook",
        "http://\u0080/hook",
        "http://-a-/hook",
        "http://a..b/hook",
        "http://" + "a" * 64 + ".example.com/hook",
        "http://%41.example.com/hook",
    ],
)
def test_target_url_rejects_host_that_is_no_name(url):
    with pytest.raises(ValidationError) as raised:
        target_url("webhook_url", url, SecuritySettings())

    assert raised.value.field == "webhook_url"


def test_target_url_accepts_host_name_and_public_address():
    security = SecuritySettings()

    assert target_url("url", "https://B\u00fccher.example/hook", security)
    assert target_url("url", "https://_hooks.example.com./hook", security)
    assert target_url("url", "https://example.com/hook", security)
    assert target_url("url", "https://93.184.216.34/hook", security)


def test_target_url_require_https():
    security = SecuritySettings(require_https=True)

    with pytest.raises(ValidationError) as raised:
        target_url("url", "http://example.com/hook", security)

    assert "https" in raised.value.message
    assert target_url("url", "https://example.com/hook", security)


def test_target_url_rejects_user_info():
    with pytest.raises(ValidationError) as raised:
        target_url("url", "https://user:pass@example.com/hook", SecuritySettings())

    assert "user info" in raised.value.message

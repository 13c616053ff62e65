"""The address classifier (`common.http.address_refusal`) and the webhook URL check
(`common.http.url_under_prefix`): pure functions, so no socket is ever opened here."""

from __future__ import annotations

import ipaddress

import pytest

from common.http import NetworkPolicy, address_refusal, literal_address_refusal, url_under_prefix

PRIVATE_OK = NetworkPolicy(allow_private=True)
PUBLIC_ONLY = NetworkPolicy(allow_private=False)


def _v4(text: str) -> int:
    return int(ipaddress.IPv4Address(text))


# Each builder writes one IPv6 form that carries an IPv4 address.
def six_to_four(v4: str) -> str:  # RFC 3056: 2002:AABB:CCDD::/48
    return str(ipaddress.IPv6Address((0x2002 << 112) | (_v4(v4) << 80) | 1))


def nat64(v4: str) -> str:  # RFC 6052 well-known prefix 64:ff9b::/96
    return str(ipaddress.IPv6Address((0x64FF9B << 96) | _v4(v4)))


def teredo_client(v4: str) -> str:  # RFC 4380: the client address is stored inverted
    server = _v4("65.54.227.120")
    return str(
        ipaddress.IPv6Address(
            (0x20010000 << 96) | (server << 64) | (0x8000 << 48) | (0x63BF << 32) | (~_v4(v4) & 0xFFFFFFFF)
        )
    )


def teredo_server(v4: str) -> str:
    client = _v4("8.8.8.8")
    return str(
        ipaddress.IPv6Address(
            (0x20010000 << 96) | (_v4(v4) << 64) | (0x8000 << 48) | (0x63BF << 32) | (~client & 0xFFFFFFFF)
        )
    )


def mapped(v4: str) -> str:
    return f"::ffff:{v4}"


def compatible(v4: str) -> str:  # deprecated IPv4-compatible ::a.b.c.d
    return f"::{v4}"


FORMS = [six_to_four, nat64, teredo_client, teredo_server, mapped, compatible]


def test_builders_write_what_they_claim():
    assert ipaddress.IPv6Address(six_to_four("169.254.169.254")).sixtofour == ipaddress.IPv4Address(
        "169.254.169.254"
    )
    assert ipaddress.IPv6Address(teredo_client("10.1.2.3")).teredo[1] == ipaddress.IPv4Address("10.1.2.3")
    assert ipaddress.IPv6Address(teredo_server("10.1.2.3")).teredo[0] == ipaddress.IPv4Address("10.1.2.3")
    assert nat64("169.254.169.254") == "64:ff9b::a9fe:a9fe"


@pytest.mark.parametrize("address", ["168.63.129.16", "169.254.169.254", "100.100.100.200"])
@pytest.mark.parametrize("policy", [PRIVATE_OK, PUBLIC_ONLY], ids=["private-ok", "public-only"])
def test_cloud_metadata_addresses_are_refused_under_every_policy(address, policy):
    assert (
        address_refusal(ipaddress.ip_address(address), policy) == "cloud metadata addresses are not allowed"
    )


def test_azure_neighbours_are_not_metadata():
    for neighbour in ("168.63.129.15", "168.63.129.17"):
        assert address_refusal(ipaddress.ip_address(neighbour), PUBLIC_ONLY) is None


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("v4", ["168.63.129.16", "169.254.169.254", "169.254.7.7", "0.0.0.0", "224.0.0.1"])
@pytest.mark.parametrize("policy", [PRIVATE_OK, PUBLIC_ONLY], ids=["private-ok", "public-only"])
def test_ipv6_forms_embedding_an_always_refused_ipv4_are_refused(form, v4, policy):
    address = ipaddress.ip_address(form(v4))
    assert address_refusal(address, policy) is not None, form(v4)
    assert literal_address_refusal(f"[{form(v4)}]", policy) is not None


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("v4", ["127.0.0.1", "10.1.2.3", "192.168.1.1", "100.64.0.1"])
def test_ipv6_forms_embedding_a_private_ipv4_follow_the_policy(form, v4):
    address = ipaddress.ip_address(form(v4))
    assert address_refusal(address, PUBLIC_ONLY) is not None, form(v4)


@pytest.mark.parametrize("form", [six_to_four, nat64, mapped])
def test_ipv6_forms_embedding_a_public_ipv4_are_allowed(form):
    assert address_refusal(ipaddress.ip_address(form("8.8.8.8")), PUBLIC_ONLY) is None


def test_ipv4_compatible_form_is_refused_even_for_a_public_ipv4():
    assert address_refusal(ipaddress.ip_address(compatible("8.8.8.8")), PRIVATE_OK) is not None


def test_plain_ipv6_addresses_keep_their_classification():
    assert address_refusal(ipaddress.ip_address("2606:4700::1111"), PUBLIC_ONLY) is None
    assert address_refusal(ipaddress.ip_address("fd12:3456::1"), PRIVATE_OK) is None
    assert address_refusal(ipaddress.ip_address("fd12:3456::1"), PUBLIC_ONLY) is not None
    assert address_refusal(ipaddress.ip_address("fe80::1"), PRIVATE_OK) is not None


# --- webhook URLs under a prefix, after normalisation -------------------------------------------------

DISCORD = "https://discord.com/api/webhooks/"


@pytest.mark.parametrize(
    "url",
    [
        "https://discord.com/api/webhooks/123456/abc-DEF_ghi",
        "https://discord.com/api/webhooks/123456/abc?wait=true",
        "https://DISCORD.com/api/webhooks/1/a",
        "https://discord.com:443/api/webhooks/1/a",
    ],
)
def test_webhook_urls_under_the_prefix_are_accepted(url):
    assert url_under_prefix(url, DISCORD)


@pytest.mark.parametrize(
    "url",
    [
        "https://discord.com/api/webhooks/../../x",
        "https://discord.com/api/webhooks/1/../../../x",
        "https://discord.com/api/webhooks/./1/a",
        "https://discord.com/api/webhooks/%2e%2e/%2e%2e/x",
        "https://discord.com/api/webhooks/%2E%2E/x",
        "https://discord.com/api/webhooks/%252e%252e/x",
        "https://discord.com/api/webhooks/1%2f..%2f..%2fx",
        "https://discord.com/api/webhooks/..%5c..%5cx",
        "https://discord.com/api/webhooks/..\\..\\x",
        "https://discord.com\\@evil.example/api/webhooks/1/a",
        "https://discord.com/api/webhooks\\..\\x",
        "https://user@discord.com/api/webhooks/1/a",
        "https://discord.com@evil.example/api/webhooks/1/a",
        "https://discord.com/api/webhooks/1/a@evil.example",
        "https://discord.com/api/webhooks/1/a#frag",
        "https://discord.com/api/webhooks/",
        "https://discord.com/api/webhooks//x",
        "https://discord.com:8443/api/webhooks/1/a",
        "http://discord.com/api/webhooks/1/a",
        "https://discord.com.evil.example/api/webhooks/1/a",
        "https://discord.com/api/webhooksx/1/a",
        "https://discord.com/api/webhooks/1/a b",
        "https://discord.com/api/webhooks/1/a\n",
        "https://discord.com/api/webhooks/1/\u00e9",
    ],
)
def test_webhook_urls_escaping_the_prefix_are_refused(url):
    assert not url_under_prefix(url, DISCORD), url

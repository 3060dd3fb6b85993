"""Outbound addresses (shared/security/outbound.py): the save-time URL rules, the address classes
refused at connect time, and the production refusal of ALLOW_PRIVATE_OUTBOUND_URLS."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from shared.config import Settings
from shared.errors import OutboundUrlRefused
from shared.security.outbound import address_refusal, check_outbound_url, host_on_list

STRICT = Settings(_env_file=None, outbound_allowed_hosts="api.cal.com, *.cal.example.com")
LOOSE = Settings(_env_file=None, allow_private_outbound_urls=True)

REFUSED: dict[str, tuple[str, str]] = {
    "loopback_v4": ("https://127.0.0.1", "address not allowed (loopback)"),
    "loopback_v4_other": ("https://127.8.9.10:8443/", "address not allowed (loopback)"),
    "rfc1918_10": ("https://10.0.0.1", "address not allowed (private network)"),
    "rfc1918_192": ("https://192.168.1.1/api", "address not allowed (private network)"),
    "metadata": ("https://169.254.169.254", "address not allowed (link-local or metadata)"),
    "loopback_v6": ("https://[::1]", "address not allowed (loopback)"),
    "mapped_v6": ("https://[::ffff:10.0.0.1]", "address not allowed (private network)"),
    "cgnat": ("https://100.64.0.1", "address not allowed (shared address space)"),
    "unspecified": ("https://0.0.0.0", "address not allowed (unspecified)"),
    "http": ("http://api.cal.com", "only https URLs are allowed"),
    "ftp": ("ftp://api.cal.com", "only https URLs are allowed"),
    "not_listed": ("https://evil.example.org", "host evil.example.org is not on the allowed"),
    "apex_of_wildcard": ("https://cal.example.com", "host cal.example.com is not on the allowed"),
    "lookalike": ("https://api.cal.com.evil.org", "is not on the allowed list"),
    "public_ip_not_listed": ("https://8.8.8.8", "host 8.8.8.8 is not on the allowed list"),
    "userinfo": ("https://user:pw@api.cal.com", "credentials in the URL are not allowed"),
    "userinfo_at_only": ("https://@api.cal.com", "credentials in the URL are not allowed"),
    "query": ("https://api.cal.com/?to=http://10.0.0.1", "a base URL has no query or fragment"),
    "bad_port": ("https://api.cal.com:99999", "not a valid URL"),
    "no_host": ("https:///v2", "the URL names no host"),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_refused_urls_name_the_reason(case: str) -> None:
    url, reason = REFUSED[case]
    with pytest.raises(OutboundUrlRefused) as refused:
        check_outbound_url(url, STRICT)
    assert refused.value.status == 422
    assert refused.value.code == "outbound_url_refused"
    assert refused.value.extra["field"] == "base_url"
    assert reason in refused.value.detail, refused.value.detail


@pytest.mark.parametrize(
    ("url", "stored"),
    [
        ("https://api.cal.com", "https://api.cal.com"),
        ("https://API.Cal.com/", "https://API.Cal.com"),
        ("https://api.cal.com./v2/", "https://api.cal.com./v2"),
        ("https://eu.cal.example.com", "https://eu.cal.example.com"),
        ("https://a.b.cal.example.com:8443/base", "https://a.b.cal.example.com:8443/base"),
        # No DNS at save time: a host that does not resolve (yet) is still accepted.
        ("https://not-yet-live.cal.example.com", "https://not-yet-live.cal.example.com"),
    ],
)
def test_allowed_urls_are_stored_without_trailing_slash(url: str, stored: str) -> None:
    assert check_outbound_url(url, STRICT) == stored


def test_allow_private_admits_http_loopback_but_not_credentials() -> None:
    assert check_outbound_url("http://127.0.0.1:8123/", LOOSE) == "http://127.0.0.1:8123"
    assert check_outbound_url("https://10.0.0.1", LOOSE) == "https://10.0.0.1"
    assert check_outbound_url("http://anything.internal", LOOSE) == "http://anything.internal"
    with pytest.raises(OutboundUrlRefused, match="credentials"):
        check_outbound_url("http://u:p@127.0.0.1:8123", LOOSE)
    with pytest.raises(OutboundUrlRefused, match="only https"):
        check_outbound_url("file:///etc/passwd", LOOSE)


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("10.1.2.3", "private network"),
        ("172.16.0.1", "private network"),
        ("192.168.0.1", "private network"),
        ("100.64.0.1", "shared address space"),
        ("100.127.255.254", "shared address space"),
        ("169.254.169.254", "link-local or metadata"),
        ("169.254.0.1", "link-local or metadata"),
        ("0.0.0.0", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("240.0.0.1", "private network"),
        ("255.255.255.255", "private network"),
        ("::1", "loopback"),
        ("::", "unspecified"),
        ("fd00::1", "private network"),
        ("fc00::1", "private network"),
        ("fe80::1", "link-local or metadata"),
        ("ff02::1", "multicast"),
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:169.254.169.254", "link-local or metadata"),
        ("64:ff9b::a00:1", "private network"),  # NAT64 of 10.0.0.1
        ("2002:a00:1::1", "private network"),  # 6to4 of 10.0.0.1
        ("2001:db8::1", "private network"),  # documentation
    ],
)
def test_non_public_addresses_are_refused(address: str, reason: str) -> None:
    assert address_refusal(address) == f"address not allowed ({reason})"


@pytest.mark.parametrize(
    "address", ["104.16.0.1", "8.8.8.8", "2606:4700::6810:1", "::ffff:8.8.8.8", "64:ff9b::808:808"]
)
def test_public_addresses_pass(address: str) -> None:
    assert address_refusal(address) is None


def test_wildcard_entries_admit_subdomains_only() -> None:
    patterns = ["api.cal.com", "*.example.com"]
    assert host_on_list("API.CAL.COM.", patterns)
    assert host_on_list("a.example.com", patterns)
    assert not host_on_list("example.com", patterns)
    assert not host_on_list("badexample.com", patterns)
    assert not host_on_list("cal.com", patterns)


def test_production_refuses_allow_private_outbound_urls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APP_ENV", "production")
    monkeypatch.setenv("SECRET_KEY", "a-real-secret-for-this-test-0123456789")
    monkeypatch.setenv("ALLOW_PRIVATE_OUTBOUND_URLS", "true")
    with pytest.raises(ValidationError, match="ALLOW_PRIVATE_OUTBOUND_URLS must not be set"):
        Settings(_env_file=None)
    monkeypatch.setenv("ALLOW_PRIVATE_OUTBOUND_URLS", "false")
    production = Settings(_env_file=None)
    assert production.allow_private_outbound_urls is False
    assert production.outbound_allowed_hosts == "api.cal.com"

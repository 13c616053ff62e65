"""The shared outbound HTTP client: redirects, size caps, deadlines, address policy."""

from __future__ import annotations

import pytest

from common.http import HttpError, NetworkPolicy, address_refusal, http_request, open_stream
from tests.support.fake_http import FakeHttpServer, FakeResponse, json_response

# The fakes listen on 127.0.0.1: these tests opt in to loopback like every caller must.
LOOPBACK = NetworkPolicy(allow_private=True)


def test_redirect_followed_only_under_allowed_prefixes(fake_http):
    fake_http.route("GET", "/start", lambda r: FakeResponse(302, b"", {"Location": "/allowed/file"}))
    fake_http.route("GET", "/allowed/file", json_response({"ok": True}))
    result = http_request(
        "GET",
        fake_http.url + "/start",
        timeout=5,
        policy=LOOPBACK,
        redirect_prefixes=[fake_http.url + "/allowed/"],
    )
    assert result.status_code == 200
    assert result.json() == {"ok": True}


def test_redirect_to_other_port_refused_before_following(fake_http):
    with FakeHttpServer() as other:
        other.route("GET", "/x", json_response({"never": True}))
        fake_http.route("GET", "/start", lambda r: FakeResponse(302, b"", {"Location": other.url + "/x"}))
        with pytest.raises(HttpError) as caught:
            http_request(
                "GET", fake_http.url + "/start", timeout=5, policy=LOOPBACK, redirect_prefixes=[fake_http.url]
            )
        assert caught.value.kind == "redirect"
        assert other.requests == []


def test_redirect_without_prefixes_is_returned(fake_http):
    fake_http.route("GET", "/start", lambda r: FakeResponse(301, b"", {"Location": "http://example.com/"}))
    assert http_request("GET", fake_http.url + "/start", timeout=5, policy=LOOPBACK).status_code == 301


def test_size_cap_while_streaming(fake_http):
    fake_http.route("GET", "/big", lambda r: FakeResponse(200, [b"x" * 1000] * 10))
    with open_stream("GET", fake_http.url + "/big", timeout=5, policy=LOOPBACK, max_bytes=5000) as stream:
        received = 0
        with pytest.raises(HttpError) as caught:
            for chunk in stream.iter_chunks():
                received += len(chunk)
        assert caught.value.kind == "too_large"
        assert received <= 5000


def test_deadline_cuts_a_dripping_server(fake_http):
    fake_http.route("GET", "/drip", lambda r: FakeResponse(200, [b"x"] * 100, chunk_interval=0.1))
    with pytest.raises(HttpError) as caught:
        http_request("GET", fake_http.url + "/drip", timeout=1, policy=LOOPBACK)
    assert caught.value.kind == "timeout"
    assert caught.value.transient


@pytest.mark.parametrize(
    "url", ["ftp://127.0.0.1/", "http:///nohost", "http://127.0.0.1:99999/", "not a url"]
)
def test_invalid_urls(url):
    with pytest.raises(HttpError) as caught:
        http_request("GET", url, timeout=1, policy=LOOPBACK)
    assert caught.value.kind == "invalid_url"


@pytest.mark.parametrize(
    "address, allow_private, refused",
    [
        ("127.0.0.1", True, False),
        ("10.1.2.3", True, False),
        ("127.0.0.1", False, True),
        ("10.1.2.3", False, True),
        ("100.64.0.1", False, True),
        ("169.254.169.254", True, True),
        ("169.254.1.1", True, True),
        ("fe80::1", True, True),
        ("fd00:ec2::254", True, True),
        ("224.0.0.1", True, True),
        ("0.0.0.0", True, True),
        ("93.184.216.34", False, False),
    ],
)
def test_address_policy(address, allow_private, refused):
    import ipaddress

    reason = address_refusal(ipaddress.ip_address(address), NetworkPolicy(allow_private=allow_private))
    assert (reason is not None) is refused


def test_no_proxy_from_environment(fake_http, monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", "http://10.9.9.9:3128")
    monkeypatch.setenv("http_proxy", "http://10.9.9.9:3128")
    fake_http.route("GET", "/", json_response({"direct": True}))
    assert http_request("GET", fake_http.url + "/", timeout=5, policy=LOOPBACK).json() == {"direct": True}

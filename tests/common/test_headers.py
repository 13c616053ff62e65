"""EnvironHeaders: the webhook's lazy, case-insensitive view of a WSGI environ's headers, which
must answer as `request.headers` (Django's HttpHeaders) does."""

from __future__ import annotations

from collections.abc import Mapping

import pytest
from django.http.request import HttpHeaders
from django.test import RequestFactory

from common.headers import EnvironHeaders

ENVIRON = {
    "REQUEST_METHOD": "POST",
    "PATH_INFO": "/webhooks/telegram",
    "QUERY_STRING": "channel=abc",
    "SERVER_NAME": "testserver",
    "wsgi.url_scheme": "http",
    "CONTENT_TYPE": "application/json",
    "CONTENT_LENGTH": "42",
    "HTTP_X_TELEGRAM_BOT_API_SECRET_TOKEN": "s3cret",
    "HTTP_USER_AGENT": "TelegramBot (like TwitterBot)",
    "HTTP_X_EMPTY": "",
}


@pytest.fixture
def headers() -> EnvironHeaders:
    return EnvironHeaders(dict(ENVIRON))


@pytest.mark.parametrize(
    "name",
    [
        "X-Telegram-Bot-Api-Secret-Token",
        "x-telegram-bot-api-secret-token",
        "X-TELEGRAM-BOT-API-SECRET-TOKEN",
        "x-TeLeGrAm-bOt-ApI-sEcReT-tOkEn",
    ],
)
def test_lookups_ignore_case(headers, name):
    assert headers[name] == "s3cret"
    assert headers.get(name) == "s3cret"
    assert name in headers


def test_content_type_and_length_are_read_unprefixed(headers):
    assert headers["Content-Type"] == "application/json"
    assert headers.get("content-length") == "42"
    assert "CONTENT-TYPE" in headers and "Content-Length" in headers
    assert EnvironHeaders({"CONTENT_TYPE": "text/plain"}).get("Content-Type") == "text/plain"


def test_an_empty_value_is_present(headers):
    assert headers["X-Empty"] == "" and "X-Empty" in headers


def test_missing_headers(headers):
    assert headers.get("X-Missing") is None
    assert headers.get("X-Missing", "fallback") == "fallback"
    assert "X-Missing" not in headers
    with pytest.raises(KeyError):
        headers["X-Missing"]
    # Environ entries that are not headers are not headers here either.
    for name in ("Request-Method", "Path-Info", "Server-Name", "wsgi.url_scheme", "Query-String"):
        assert name not in headers and headers.get(name) is None
    assert 42 not in headers and None not in headers


def test_iteration_and_len_match_django(headers):
    django_headers = HttpHeaders(dict(ENVIRON))
    assert list(headers) == list(django_headers)
    assert len(headers) == len(django_headers) == 5
    assert dict(headers) == dict(django_headers)
    assert set(headers) == {
        "Content-Type",
        "Content-Length",
        "X-Telegram-Bot-Api-Secret-Token",
        "User-Agent",
        "X-Empty",
    }
    assert isinstance(headers, Mapping)


def test_every_django_header_is_found_by_its_name_and_lowercase_name():
    request = RequestFactory().post(
        "/webhooks/slack?x=1",
        data=b"{}",
        content_type="application/json",
        HTTP_X_SLACK_SIGNATURE="v0=abc",
        HTTP_X_SLACK_REQUEST_TIMESTAMP="1700000000",
        HTTP_ACCEPT_ENCODING="gzip",
    )
    lazy = EnvironHeaders(request.META)
    for name, value in request.headers.items():
        assert lazy[name] == value and lazy[name.lower()] == value and lazy.get(name.upper()) == value
    assert len(lazy) == len(request.headers)
    assert dict(lazy) == dict(request.headers)


def test_lookups_do_not_build_the_full_mapping(headers):
    assert headers["X-Telegram-Bot-Api-Secret-Token"] == "s3cret"
    assert "Content-Type" in headers and headers.get("X-Missing") is None
    assert headers._all is None
    assert len(headers) == 5
    built = headers._all
    list(headers)
    assert headers._all is built  # built once


def test_every_name_iteration_yields_can_be_looked_up():
    environ = {"HTTP_CONTENT_TYPE": "text/plain", "HTTP_CONTENT_LENGTH": "3", "HTTP_X_A": "a"}
    headers = EnvironHeaders(environ)
    assert {name: headers.get(name) for name in headers} == dict(HttpHeaders(environ))
    assert dict(headers) == dict(HttpHeaders(environ))

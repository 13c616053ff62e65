"""Who may scrape `GET /metrics`: a bearer METRICS_TOKEN, or a direct loopback client when unset."""

from __future__ import annotations

import pytest

from tests.observability.helpers import scrape

pytestmark = pytest.mark.django_db
TOKEN = "metrics-token-0123456789abcdef"


def test_open_to_a_loopback_client_without_a_token(client, settings):
    settings.METRICS_TOKEN = ""
    for address in ("127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1"):
        samples = scrape(client, REMOTE_ADDR=address)
        assert samples  # something was exposed


@pytest.mark.parametrize(
    "address", ["10.0.0.5", "192.168.1.20", "2001:db8::1", "::ffff:10.0.0.5", "", "not-an-ip"]
)
def test_refused_to_other_clients_without_a_token(client, settings, address):
    settings.METRICS_TOKEN = ""
    response = client.get("/metrics", REMOTE_ADDR=address)
    assert response.status_code == 403
    assert response.json()["code"] == "forbidden"
    assert set(response.json()) <= {"error", "code", "details"}


@pytest.mark.parametrize("header", ["HTTP_X_FORWARDED_FOR", "HTTP_FORWARDED", "HTTP_X_REAL_IP"])
def test_refused_through_a_local_proxy_without_a_token(client, settings, header):
    """A reverse proxy on the same host connects from 127.0.0.1: its clients are not local."""
    settings.METRICS_TOKEN = ""
    response = client.get("/metrics", REMOTE_ADDR="127.0.0.1", **{header: "203.0.113.7"})
    assert response.status_code == 403


def test_with_a_token_the_bearer_is_required_from_anywhere(client, settings):
    settings.METRICS_TOKEN = TOKEN
    assert scrape(client, REMOTE_ADDR="10.0.0.5", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert scrape(client, REMOTE_ADDR="10.0.0.5", HTTP_AUTHORIZATION=f"bearer {TOKEN}")
    for header in (None, f"Bearer {TOKEN[:-1]}", f"Bearer {TOKEN}x", "Bearer ", f"Basic {TOKEN}", TOKEN):
        extra = {"HTTP_AUTHORIZATION": header} if header is not None else {}
        # Loopback is no exception once a token is configured.
        response = client.get("/metrics", REMOTE_ADDR="127.0.0.1", **extra)
        assert response.status_code == 401, header
        assert response.json()["code"] == "unauthenticated"
        assert response["WWW-Authenticate"].startswith("Bearer")
        assert TOKEN not in response.content.decode()


def test_only_get_and_head(client, settings):
    settings.METRICS_TOKEN = ""
    assert client.head("/metrics").status_code == 200
    response = client.post("/metrics")
    assert response.status_code == 405
    assert response.json()["code"] == "method_not_allowed"
    assert response["Allow"] == "GET, HEAD"
    assert client.get("/metrics/").status_code == 200  # with and without the trailing slash

"""The outbound client under many calls: kept-alive connections, deadlines without threads."""

from __future__ import annotations

import socket
import threading

import pytest

from common.http import HttpError, NetworkPolicy, http_request, open_stream
from tests.support.fake_http import FakeHttpServer, FakeResponse, json_response

LOOPBACK = NetworkPolicy(allow_private=True)


def test_sequential_calls_to_one_host_reuse_one_connection(fake_http):
    fake_http.route("POST", "/", json_response({"ok": True}))
    for _ in range(3):
        assert http_request("POST", fake_http.url + "/", json={"n": 1}, timeout=5, policy=LOOPBACK).ok
    ports = {request.client_port for request in fake_http.requests}
    assert len(fake_http.requests) == 3
    assert len(ports) == 1


def test_other_hosts_get_their_own_connections(fake_http):
    with FakeHttpServer() as other:
        for server in (fake_http, other):
            server.route("GET", "/", json_response({"ok": True}))
        http_request("GET", fake_http.url + "/", timeout=5, policy=LOOPBACK)
        http_request("GET", other.url + "/", timeout=5, policy=LOOPBACK)
        assert len(fake_http.requests) == len(other.requests) == 1


def test_a_connection_cut_by_the_deadline_is_not_reused(fake_http):
    fake_http.route("GET", "/drip", lambda r: FakeResponse(200, [b"x"] * 50, chunk_interval=0.1))
    fake_http.route("GET", "/ok", json_response({"ok": True}))
    with pytest.raises(HttpError):
        http_request("GET", fake_http.url + "/drip", timeout=0.5, policy=LOOPBACK)
    assert http_request("GET", fake_http.url + "/ok", timeout=5, policy=LOOPBACK).json() == {"ok": True}
    drip, ok = fake_http.requests
    assert drip.client_port != ok.client_port


def test_a_body_left_unread_does_not_poison_the_next_call(fake_http):
    fake_http.route("GET", "/big", lambda r: FakeResponse(200, b"y" * 200_000))
    fake_http.route("GET", "/ok", json_response({"ok": True}))
    with open_stream("GET", fake_http.url + "/big", timeout=5, max_bytes=10**6, policy=LOOPBACK) as stream:
        assert stream.status_code == 200  # the body is never read
    assert http_request("GET", fake_http.url + "/ok", timeout=5, policy=LOOPBACK).json() == {"ok": True}


def test_a_waiting_call_starts_no_thread(fake_http):
    """The deadline is enforced on each socket operation, not by a watchdog thread."""
    seen: list[set[int]] = []
    release = threading.Event()

    def slow(request):
        seen.append({thread.ident for thread in threading.enumerate()})
        release.wait(5)
        return FakeResponse(200, b"{}")

    fake_http.route("GET", "/slow", slow)
    before = {thread.ident for thread in threading.enumerate()}
    caller = threading.Thread(
        target=http_request, args=("GET", fake_http.url + "/slow"), kwargs={"timeout": 5, "policy": LOOPBACK}
    )
    caller.start()
    try:
        for _ in range(500):
            if seen:
                break
            threading.Event().wait(0.01)
    finally:
        release.set()
        caller.join(5)
    started = seen[0] - before - {caller.ident}
    assert len(started) == 1, "only the fake server's handler thread may appear"


def test_concurrent_calls_share_the_pool(fake_http):
    fake_http.route("GET", "/", lambda r: FakeResponse(200, b"{}", delay=0.2))
    errors: list[BaseException] = []

    def call() -> None:
        try:
            http_request("GET", fake_http.url + "/", timeout=5, policy=LOOPBACK)
        except BaseException as exc:  # collected for the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=call) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert errors == []
    assert len(fake_http.requests) == 20


def test_the_connection_goes_to_the_address_that_was_checked(fake_http, monkeypatch):
    """A name resolving to a refused address is refused before any socket is opened."""
    real = socket.getaddrinfo

    def resolve(host, port, *args, **kwargs):
        if host == "agent.example":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("169.254.169.254", port))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    with pytest.raises(HttpError) as caught:
        http_request("GET", "http://agent.example:8080/", timeout=5, policy=LOOPBACK)
    assert caught.value.kind == "address"


def test_a_name_is_connected_on_its_checked_loopback_address(fake_http, monkeypatch):
    real = socket.getaddrinfo
    port = int(fake_http.url.rsplit(":", 1)[1])

    def resolve(host, port_, *args, **kwargs):
        if host == "agent.internal":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port_))]
        return real(host, port_, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    fake_http.route("GET", "/", json_response({"ok": True}))
    assert http_request("GET", f"http://agent.internal:{port}/", timeout=5, policy=LOOPBACK).json() == {
        "ok": True
    }
    assert fake_http.requests[0].headers["Host"] == f"agent.internal:{port}"
    refused = NetworkPolicy(allow_private=False)
    with pytest.raises(HttpError) as caught:
        http_request("GET", f"http://agent.internal:{port}/", timeout=5, policy=refused)
    assert caught.value.kind == "address"


@pytest.mark.django_db(transaction=True)
def test_no_database_connection_is_held_while_the_peer_answers(fake_http):
    """The caller's connection (outside a transaction) is given back before the request: while
    the peer thinks, the only connection to the test database is the peer's own look."""
    from django.db import connection, connections

    seen: list[int] = []

    def peer(request):
        look = connections.create_connection("default")
        try:
            with look.cursor() as cursor:
                cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()")
                seen.append(cursor.fetchone()[0])
        finally:
            look.close()
        return FakeResponse(200, b"{}")

    fake_http.route("GET", "/think", peer)
    with connection.cursor() as cursor:  # the caller has used its connection
        cursor.execute("SELECT 1")
    assert connection.connection is not None
    http_request("GET", fake_http.url + "/think", timeout=5, policy=LOOPBACK)
    assert seen == [1]
    assert connection.connection is None

"""The guard itself: loopback passes, anything else fails the test."""

import socket

import pytest

from tests.support.network_guard import ExternalNetworkBlocked, NetworkGuard, is_loopback_host


@pytest.mark.parametrize("host", ["127.0.0.1", "127.8.9.1", "::1", "localhost", "[::1]", "::ffff:127.0.0.1"])
def test_loopback_hosts_allowed(host):
    assert is_loopback_host(host)


@pytest.mark.parametrize("host", ["10.0.0.1", "8.8.8.8", "169.254.169.254", "example.com", "2001:db8::1"])
def test_other_hosts_refused(host):
    assert not is_loopback_host(host)


def test_connect_outside_loopback_is_blocked_and_recorded():
    guard = NetworkGuard()
    guard.install()
    try:
        with socket.socket() as sock, pytest.raises(ExternalNetworkBlocked):
            sock.connect(("192.0.2.1", 80))
        with pytest.raises(ExternalNetworkBlocked):
            socket.getaddrinfo("example.com", 80)
    finally:
        guard.uninstall()
    assert len(guard.violations) == 2


def test_loopback_connect_goes_through(network_guard):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    with socket.create_connection(server.getsockname(), timeout=2):
        pass
    server.close()
    assert network_guard.violations == []

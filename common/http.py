"""The one way this service talks HTTP to the outside world.

Every outbound request (agents, chat platforms, GitHub) goes through here so that timeouts, an
overall deadline, a response size cap, redirect rules and address checks live in one place.

Address checks run at connection time on the resolved addresses, and the socket connects to the
address that was checked (no DNS rebinding between check and connect). Link-local and cloud
metadata addresses are always refused; private and loopback addresses only when the policy says.
"""

from __future__ import annotations

import contextlib
import ipaddress
import re
import socket
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, HTTPError, NewConnectionError
from urllib3.util import connection as urllib3_connection

USER_AGENT = "integrations-api/1.0"
CHUNK_BYTES = 64 * 1024
_REDIRECT_STATUSES = {301, 302, 303, 307, 308}

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Cloud metadata and host-agent endpoints: AWS/GCP/Azure IMDS, AWS ECS, AWS IMDS over IPv6,
# Alibaba, and Azure's WireServer (168.63.129.16: DHCP, DNS, health probes and VM agent config).
_METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in ("169.254.169.254", "169.254.170.2", "fd00:ec2::254", "100.100.100.200", "168.63.129.16")
)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # RFC 6052 well-known prefix


@dataclass(frozen=True)
class NetworkPolicy:
    """Which destination addresses a request may reach."""

    allow_private: bool = True


class HttpError(Exception):
    """A transport failure with a short reason that is safe to show and store.

    `kind` is one of: invalid_url, address, timeout, connection, too_large, redirect.
    Timeouts and connection failures are transient; the others are permanent.
    """

    def __init__(self, kind: str, reason: str) -> None:
        self.kind = kind
        self.reason = reason
        super().__init__(reason)

    @property
    def transient(self) -> bool:
        return self.kind in {"timeout", "connection"}


class AddressNotAllowed(HttpError):
    def __init__(self, reason: str) -> None:
        super().__init__("address", reason)


def embedded_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address carries, which is where a packet to it ends up:
    IPv4-mapped (`::ffff:a.b.c.d`), NAT64 (`64:ff9b::/96`), 6to4 (`2002::/16`), Teredo
    (`2001::/32`, server and client) and the deprecated IPv4-compatible form (`::a.b.c.d`)."""
    found: list[ipaddress.IPv4Address] = []
    if ip.ipv4_mapped is not None:
        found.append(ip.ipv4_mapped)
    if ip in _NAT64 or (int(ip) >> 32 == 0 and int(ip) > 1):  # not :: or ::1
        found.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    if ip.sixtofour is not None:
        found.append(ip.sixtofour)
    if ip.teredo is not None:
        found.extend(ip.teredo)
    return found


def address_refusal(ip: IPAddress, policy: NetworkPolicy) -> str | None:
    """Why `ip` may not be reached under `policy`, or None when it may.

    An IPv6 address that embeds an IPv4 address is refused when that IPv4 address would be:
    a 6to4 or Teredo relay, a NAT64 gateway or a dual-stack socket delivers to it. IPv4-mapped
    and NAT64 addresses are judged by their IPv4 address alone (they are that address); the
    other forms must pass on both counts, so the IPv4-compatible form (inside the reserved
    `::/8`) is always refused.
    """
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = embedded_ipv4(ip)
        for inner in embedded:
            refusal = _classify(inner, policy)
            if refusal:
                return refusal
        if ip.ipv4_mapped is not None or ip in _NAT64:
            return None
    return _classify(ip, policy)


def _classify(ip: IPAddress, policy: NetworkPolicy) -> str | None:
    if ip in _METADATA_ADDRESSES:
        return "cloud metadata addresses are not allowed"
    if ip.is_link_local:
        return "link-local addresses are not allowed"
    if ip.is_multicast or ip.is_unspecified or ip.is_reserved:
        return "reserved addresses are not allowed"
    if not policy.allow_private and not ip.is_global:
        return "private and loopback addresses are not allowed"
    return None


def literal_address_refusal(host: str, policy: NetworkPolicy) -> str | None:
    """Early check for a URL whose host is an IP literal (names are checked when connecting)."""
    try:
        ip = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None
    return address_refusal(ip, policy)


def resolve_checked(host: str, port: int, policy: NetworkPolicy) -> list[tuple[int, str]]:
    """Resolve `host` and return `(family, address)` pairs, refusing if any address is refused."""
    try:
        infos = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        raise HttpError("connection", "host name could not be resolved") from None
    result: list[tuple[int, str]] = []
    for family, _type, _proto, _canon, sockaddr in infos:
        address = str(sockaddr[0]).split("%", 1)[0]
        refusal = address_refusal(ipaddress.ip_address(address), policy)
        if refusal:
            raise AddressNotAllowed(refusal)
        if (family, address) not in result:
            result.append((family, address))
    return result


def _shutdown_socket(sock: Any) -> None:
    # The base method works on the descriptor, for plain and TLS sockets alike; a closed or
    # detached socket is simply skipped.
    with contextlib.suppress(OSError, TypeError, ValueError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


class _Watchdog:
    """Enforces the overall deadline of one exchange on its sockets.

    Socket timeouts bound each read, not their sum: a server that drips one byte of its status
    line, headers or a chunk-size line every second would hold the request far past its
    deadline. At the deadline the watchdog shuts the exchange's sockets down, so the blocked
    read returns at once and the request fails as a timeout.
    """

    def __init__(self, deadline: float) -> None:
        self._lock = threading.Lock()
        self._watched: list[tuple[HTTPConnection, socket.socket]] = []
        self.fired = False
        self._timer = threading.Timer(max(0.0, deadline - time.monotonic()), self._fire)
        self._timer.daemon = True
        self._timer.start()

    def watch(self, connection: HTTPConnection, sock: socket.socket) -> None:
        with self._lock:
            self._watched.append((connection, sock))
            fired = self.fired
        if fired:
            _shutdown_socket(sock)

    def _fire(self) -> None:
        with self._lock:
            self.fired = True
            watched = list(self._watched)
        for connection, sock in watched:
            _shutdown_socket(sock)
            current = getattr(connection, "sock", None)  # the TLS socket once wrapped
            if current is not None and current is not sock:
                _shutdown_socket(current)

    def cancel(self) -> None:
        self._timer.cancel()


# The watchdog of the request being sent on this thread (connections are opened inside it).
_active = threading.local()


def _guarded(base: type[HTTPConnection], policy: NetworkPolicy) -> type[HTTPConnection]:
    class GuardedConnection(base):  # type: ignore[valid-type, misc]
        def _new_conn(self) -> socket.socket:
            last_error: OSError | None = None
            for _family, address in resolve_checked(self._dns_host, self.port, policy):
                try:
                    sock = urllib3_connection.create_connection(
                        (address, self.port),
                        self.timeout,
                        source_address=self.source_address,
                        socket_options=self.socket_options,
                    )
                    watchdog: _Watchdog | None = getattr(_active, "watchdog", None)
                    if watchdog is not None:
                        watchdog.watch(self, sock)
                    return sock
                except TimeoutError as exc:
                    raise ConnectTimeoutError(self, "connection timed out") from exc
                except OSError as exc:
                    last_error = exc
            raise NewConnectionError(self, f"connection failed: {last_error}")

    return GuardedConnection


@lru_cache(maxsize=8)
def _pool_classes(policy: NetworkPolicy) -> dict[str, type]:
    class GuardedHTTPPool(HTTPConnectionPool):
        ConnectionCls = _guarded(HTTPConnection, policy)

    class GuardedHTTPSPool(HTTPSConnectionPool):
        ConnectionCls = _guarded(HTTPSConnection, policy)

    return {"http": GuardedHTTPPool, "https": GuardedHTTPSPool}


class _GuardedAdapter(HTTPAdapter):
    def __init__(self, policy: NetworkPolicy) -> None:
        self._policy = policy
        super().__init__(max_retries=0)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _pool_classes(self._policy)


def _session(policy: NetworkPolicy) -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # no proxies or .netrc from the environment
    adapter = _GuardedAdapter(policy)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers["User-Agent"] = USER_AGENT
    return session


def _check_url(url: str, policy: NetworkPolicy) -> None:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise HttpError("invalid_url", "the URL is not valid") from None
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise HttpError("invalid_url", "the URL must be http or https with a host")
    refusal = literal_address_refusal(parts.hostname, policy)
    if refusal:
        raise AddressNotAllowed(refusal)


# What a platform webhook URL may hold: printable ASCII without spaces or backslashes.
_URL_CHARACTERS = re.compile(r"[!-~]+")
_DEFAULT_PORTS = {"http": 80, "https": 443}


def url_under_prefix(url: str, prefix: str) -> bool:
    """Whether `url` stays under `prefix` (same scheme, host and port; path below the prefix's)
    however a client or server normalises it.

    A plain `startswith` passes `{prefix}../../x`, which every HTTP stack resolves to a path
    outside the prefix; `%2e%2e`, backslashes and user info (`@`) are other ways to the same
    place. So the URL is refused outright when it holds user info, a fragment, a backslash,
    whitespace or non-ASCII characters, or any percent-encoding in its path (webhook paths are
    ids and tokens: they never need it), and its path must have no empty, `.` or `..` segment.
    """
    if not isinstance(url, str) or not _URL_CHARACTERS.fullmatch(url) or "\\" in url:
        return False
    try:
        target, base = urlsplit(url), urlsplit(prefix)
        target_port = target.port or _DEFAULT_PORTS.get(target.scheme)
        base_port = base.port or _DEFAULT_PORTS.get(base.scheme)
    except ValueError:
        return False
    if "@" in target.netloc or target.fragment or "%" in target.path or "@" in target.path:
        return False
    if (target.scheme, target.hostname, target_port) != (base.scheme, base.hostname, base_port):
        return False
    base_path = base.path.rstrip("/") + "/"
    if not target.path.startswith(base_path) or len(target.path) == len(base_path):
        return False
    segments = target.path[len(base_path) :].split("/")
    return unquote(target.path) == target.path and not any(s in ("", ".", "..") for s in segments)


def _redirect_allowed(target: str, prefixes: Sequence[str]) -> bool:
    t = urlsplit(target)
    for prefix in prefixes:
        p = urlsplit(prefix)
        same_origin = (t.scheme, t.hostname, t.port) == (p.scheme, p.hostname, p.port)
        if same_origin and t.path.startswith(p.path.rstrip("/") or "/"):
            return True
    return False


@dataclass
class StreamedResponse:
    """A response whose body is read in chunks under the deadline and the size cap."""

    status_code: int
    headers: Mapping[str, str]
    url: str
    _response: requests.Response
    _deadline: float
    _max_bytes: int
    received: int = field(default=0)
    _watchdog: _Watchdog | None = None

    def _cut_off(self) -> bool:
        return self._watchdog is not None and self._watchdog.fired

    def iter_chunks(self) -> Iterator[bytes]:
        raw = self._response.raw
        try:
            while True:
                if time.monotonic() > self._deadline:
                    raise HttpError("timeout", "the transfer exceeded its time limit")
                chunk = raw.read1(CHUNK_BYTES) if hasattr(raw, "read1") else raw.read(CHUNK_BYTES)
                if not chunk:
                    if self._cut_off():  # the watchdog closed it: not a complete body
                        raise HttpError("timeout", "the transfer exceeded its time limit")
                    return
                self.received += len(chunk)
                if self.received > self._max_bytes:
                    raise HttpError("too_large", f"the response exceeds {self._max_bytes} bytes")
                yield chunk
        except HttpError:
            raise
        except (requests.exceptions.RequestException, OSError, HTTPError) as exc:
            if self._cut_off():
                raise HttpError("timeout", "the transfer exceeded its time limit") from None
            raise _transport_error(exc) from None

    def read(self) -> bytes:
        return b"".join(self.iter_chunks())


@dataclass(frozen=True)
class HttpResult:
    status_code: int
    headers: Mapping[str, str]
    content: bytes
    url: str

    def json(self) -> Any:
        import json

        return json.loads(self.content)

    @property
    def ok(self) -> bool:
        return 200 <= self.status_code < 300


def _transport_error(exc: BaseException) -> HttpError:
    if isinstance(exc, HttpError):
        return exc
    text = type(exc).__name__.lower() + " " + str(exc).lower()
    if "timeout" in text or "timed out" in text:
        return HttpError("timeout", "the request timed out")
    if "refused" in text:
        return HttpError("connection", "connection refused")
    if "resolve" in text or "name or service" in text:
        return HttpError("connection", "host name could not be resolved")
    if isinstance(exc, requests.exceptions.SSLError) or "ssl" in text:
        return HttpError("connection", "TLS handshake failed")
    return HttpError("connection", "connection failed")


@contextmanager
def open_stream(
    method: str,
    url: str,
    *,
    timeout: float,
    max_bytes: int,
    policy: NetworkPolicy = NetworkPolicy(),
    headers: Mapping[str, str] | None = None,
    json: Any = None,
    data: bytes | str | Mapping[str, Any] | None = None,
    params: Mapping[str, Any] | None = None,
    redirect_prefixes: Sequence[str] = (),
    max_redirects: int = 5,
) -> Iterator[StreamedResponse]:
    """Send a request and yield the response with its body not yet read.

    `timeout` bounds the whole exchange (connect, headers and body). Redirects are followed only
    to URLs under `redirect_prefixes` (same scheme, host, port and path prefix); any other
    redirect is refused before it is followed. With no prefixes, a 3xx is returned as it is.
    """
    deadline = time.monotonic() + timeout
    session = _session(policy)
    response: requests.Response | None = None
    watchdog = _Watchdog(deadline)
    try:
        current = url
        for _hop in range(max_redirects + 1):
            _check_url(current, policy)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise HttpError("timeout", "the request timed out")
            previous = getattr(_active, "watchdog", None)
            _active.watchdog = watchdog
            try:
                response = session.request(
                    method,
                    current,
                    headers=dict(headers or {}),
                    json=json,
                    data=data,
                    params=params,
                    timeout=(min(remaining, 10.0), remaining),
                    stream=True,
                    allow_redirects=False,
                )
            except HttpError:
                raise
            except (requests.exceptions.RequestException, OSError) as exc:
                if watchdog.fired:
                    raise HttpError("timeout", "the request timed out") from None
                raise _transport_error(exc) from None
            finally:
                _active.watchdog = previous
            if response.status_code not in _REDIRECT_STATUSES or not redirect_prefixes:
                break
            target = urljoin(current, response.headers.get("Location", ""))
            response.close()
            if not _redirect_allowed(target, redirect_prefixes):
                raise HttpError("redirect", "redirect to a location that is not allowed")
            if response.status_code == 303 or (
                response.status_code in {301, 302} and method.upper() == "POST"
            ):
                method, json, data = "GET", None, None
            current, params = target, None
        else:
            raise HttpError("redirect", "too many redirects")
        yield StreamedResponse(
            status_code=response.status_code,
            headers=response.headers,
            url=current,
            _response=response,
            _deadline=deadline,
            _max_bytes=max_bytes,
            _watchdog=watchdog,
        )
    finally:
        watchdog.cancel()
        if response is not None:
            response.close()
        session.close()


def http_request(
    method: str,
    url: str,
    *,
    timeout: float,
    max_bytes: int = 4 * 1024 * 1024,
    policy: NetworkPolicy = NetworkPolicy(),
    headers: Mapping[str, str] | None = None,
    json: Any = None,
    data: bytes | str | Mapping[str, Any] | None = None,
    params: Mapping[str, Any] | None = None,
    redirect_prefixes: Sequence[str] = (),
) -> HttpResult:
    """Send a request and read the whole body (bounded by `max_bytes` and `timeout`)."""
    with open_stream(
        method,
        url,
        timeout=timeout,
        max_bytes=max_bytes,
        policy=policy,
        headers=headers,
        json=json,
        data=data,
        params=params,
        redirect_prefixes=redirect_prefixes,
    ) as stream:
        content = stream.read()
        return HttpResult(stream.status_code, stream.headers, content, stream.url)

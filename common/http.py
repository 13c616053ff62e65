"""The one way this service talks HTTP to the outside world.

Every outbound request (agents, chat platforms, GitHub) goes through here so that timeouts, an
overall deadline, a response size cap, redirect rules and address checks live in one place.

Address checks run at connection time on the resolved addresses, and the socket connects to the
address that was checked (no DNS rebinding between check and connect). Link-local and cloud
metadata addresses are always refused; private and loopback addresses only when the policy says.
"""

from __future__ import annotations

import ipaddress
import json as json_module
import os
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlencode, urljoin, urlsplit, urlunsplit

import httpcore
from cachetools import LRUCache
from django.conf import settings

from common.db import release_connections

USER_AGENT = "integrations-api/1.0"
_REDIRECT_STATUSES = {301, 302, 303, 307, 308}
# A socket operation outside any deadline (none is, in practice) still never waits for ever.
_NO_DEADLINE_CAP = 300.0

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
    """Which destination addresses a request may reach.

    Private and loopback networks are refused unless the caller opts in: a new caller that
    forgets to choose gets the safe answer, never a path into the internal network.
    """

    allow_private: bool = False


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
        literal = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        literal = None
    if literal is not None:  # an address needs no resolver (under gevent, a thread-pool hop)
        refusal = address_refusal(literal, policy)
        if refusal:
            raise AddressNotAllowed(refusal)
        return [(socket.AF_INET6 if literal.version == 6 else socket.AF_INET, str(literal))]
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


# The deadline of the exchange running in this context (thread or greenlet). Every socket read
# and write of that exchange is bounded by what is left of it, so a server that drips its
# answer byte by byte cannot hold a request past its deadline, and no watchdog thread is needed.
_deadline: ContextVar[float | None] = ContextVar("http_deadline", default=None)


def _bounded(timeout: float | None, error: type[Exception]) -> float:
    deadline = _deadline.get()
    if deadline is None:
        return timeout if timeout is not None else _NO_DEADLINE_CAP
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise error("the exchange exceeded its deadline")
    return remaining if timeout is None else min(timeout, remaining)


class DeadlineStream(httpcore.NetworkStream):
    """A connection's stream whose every read and write stops at the current deadline."""

    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _bounded(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _bounded(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        bounded = _bounded(timeout, httpcore.ConnectTimeout)
        return DeadlineStream(self._inner.start_tls(ssl_context, server_hostname, bounded))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class GuardedBackend(httpcore.NetworkBackend):
    """Opens connections only to addresses the policy allows, checked on the resolved address.

    The socket connects to the very address that was checked, so a name cannot resolve to an
    allowed address for the check and to a refused one for the connection (DNS rebinding). TLS
    still verifies the certificate against the host name (httpcore passes it as SNI).
    """

    def __init__(self, policy: NetworkPolicy) -> None:
        self._policy = policy
        self._sockets = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        last_error: Exception | None = None
        for _family, address in resolve_checked(host, port, self._policy):
            try:
                stream = self._sockets.connect_tcp(
                    address,
                    port,
                    timeout=_bounded(timeout, httpcore.ConnectTimeout),
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except httpcore.ConnectError as exc:
                last_error = exc
                continue
            return DeadlineStream(stream)
        raise httpcore.ConnectError(f"connection failed: {last_error}")

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        raise httpcore.ConnectError("unix sockets are not reachable through this client")

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


class _Pools:
    """The process's connection pools by key, the least recently used dropped past
    HTTP_MAX_POOLS (its connections close once their responses are done)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.cache: LRUCache[Any, httpcore.ConnectionPool] | None = None

    def get(self, key: Any, make: Callable[[], httpcore.ConnectionPool]) -> httpcore.ConnectionPool:
        with self.lock:
            if self.cache is None:
                self.cache = LRUCache(maxsize=settings.HTTP_MAX_POOLS)
            pool = self.cache.get(key)
            if pool is None:
                pool = self.cache[key] = make()
            return pool

    def forget(self) -> None:
        self.cache = None


_pools = _Pools()


def _endpoint(url: str) -> tuple[str, str, int, str]:
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return parts.scheme, (parts.hostname or "").lower(), port, parts.path or "/"


def _spread(ident: int) -> int:
    """Thread and greenlet idents are aligned addresses: mix their bits (a tuple's hash does)
    before taking a modulus."""
    return hash((ident,)) & 0x7FFFFFFF


def _pool(policy: NetworkPolicy, url: str) -> httpcore.ConnectionPool:
    """Connection pools per endpoint (origin and path: for an agent, its workspace's URL) and
    per policy, shared by the threads or greenlets of the process; connections are kept alive
    and reused within it. Small pools keep httpcore's per-request bookkeeping (a walk over the
    pool's connections) short when thousands of calls are in flight, and one endpoint can use
    at most HTTP_MAX_CONNECTIONS of the process's sockets. The least recently used of more than
    HTTP_MAX_POOLS pools is dropped (its connections close once their responses are done)."""
    # Calls to one endpoint from many threads or greenlets spread over a few pools (by caller),
    # so no pool grows past a few dozen connections even when thousands go to one agent gateway.
    shard = _spread(threading.get_ident()) % settings.HTTP_POOL_SHARDS
    return _pools.get(
        (policy, *_endpoint(url), shard),
        lambda: httpcore.ConnectionPool(
            ssl_context=_ssl_context(),
            max_connections=settings.HTTP_MAX_CONNECTIONS,
            max_keepalive_connections=settings.HTTP_MAX_KEEPALIVE_CONNECTIONS,
            keepalive_expiry=settings.HTTP_KEEPALIVE_SECONDS,
            retries=0,
            network_backend=GuardedBackend(policy),
        ),
    )


_ssl: list[ssl.SSLContext] = []


def _ssl_context() -> ssl.SSLContext:
    """One TLS context for every pool (loading the CA bundle costs milliseconds)."""
    if not _ssl:
        _ssl.append(httpcore.default_ssl_context())
    return _ssl[0]


def _forget_pools() -> None:
    # A forked child (prefork worker, gunicorn worker) must not share its parent's sockets.
    _pools.forget()


os.register_at_fork(after_in_child=_forget_pools)


class Headers(Mapping[str, str]):
    """Response headers, looked up without regard to case; repeated fields are joined."""

    def __init__(self, raw: Iterable[tuple[bytes, bytes]]) -> None:
        self._values: dict[str, str] = {}
        for name, value in raw:
            key = name.decode("latin-1").lower()
            text = value.decode("latin-1")
            self._values[key] = f"{self._values[key]}, {text}" if key in self._values else text

    def __getitem__(self, key: str) -> str:
        return self._values[key.lower()]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)


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
    _response: httpcore.Response
    _max_bytes: int
    received: int = field(default=0)

    def iter_chunks(self) -> Iterator[bytes]:
        try:
            for chunk in self._response.iter_stream():
                if not chunk:
                    continue
                self.received += len(chunk)
                if self.received > self._max_bytes:
                    raise HttpError("too_large", f"the response exceeds {self._max_bytes} bytes")
                yield chunk
        except HttpError:
            raise
        except (httpcore.TimeoutException, httpcore.NetworkError, httpcore.ProtocolError, OSError) as exc:
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
        return json_module.loads(self.content)

    @property
    def ok(self) -> bool:
        return 200 <= self.status_code < 300


def _transport_error(exc: BaseException) -> HttpError:
    if isinstance(exc, HttpError):
        return exc
    if isinstance(exc, httpcore.TimeoutException | TimeoutError):
        return HttpError("timeout", "the request timed out")
    text = str(exc).lower()
    if "refused" in text:
        return HttpError("connection", "connection refused")
    if "ssl" in text or "certificate" in text:
        return HttpError("connection", "TLS handshake failed")
    return HttpError("connection", "connection failed")


def _encode_request(
    headers: Mapping[str, str] | None, json: Any, data: bytes | str | Mapping[str, Any] | None
) -> tuple[list[tuple[str, str]], bytes | None]:
    """The header list (the caller's names as given, defaults added) and the encoded body."""
    given = dict(headers or {})
    names = {name.lower() for name in given}
    defaults: dict[str, str] = {"User-Agent": USER_AGENT}
    body: bytes | None
    if json is not None:
        defaults["Content-Type"] = "application/json"
        body = json_module.dumps(json, separators=(",", ":")).encode()
    elif isinstance(data, Mapping):
        defaults["Content-Type"] = "application/x-www-form-urlencoded"
        body = urlencode(data, doseq=True).encode()
    else:
        body = data.encode() if isinstance(data, str) else data
    merged = [(name, value) for name, value in defaults.items() if name.lower() not in names]
    return merged + list(given.items()), body


def _with_params(url: str, params: Mapping[str, Any] | None) -> str:
    if not params:
        return url
    parts = urlsplit(url)
    query = "&".join(filter(None, [parts.query, urlencode(params, doseq=True)]))
    return urlunsplit(parts._replace(query=query))


@contextmanager
def open_stream(
    method: str,
    url: str,
    *,
    timeout: float,
    max_bytes: int,
    policy: NetworkPolicy,
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
    The caller's database connections are given back first (common.db.release_connections): a
    peer may take up to `timeout`, and nobody waits on one while holding a connection.
    """
    release_connections()
    deadline = time.monotonic() + timeout
    token = _deadline.set(deadline)
    responses = ExitStack()  # the response of the current hop, closed when leaving
    response: httpcore.Response | None = None
    try:
        current = _with_params(url, params)
        for _hop in range(max_redirects + 1):
            _check_url(current, policy)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise HttpError("timeout", "the request timed out")
            request_headers, body = _encode_request(headers, json, data)
            try:
                response = responses.enter_context(
                    _pool(policy, current).stream(
                        method.upper(),
                        current,
                        headers=request_headers,
                        content=body,
                        extensions={
                            "timeout": {
                                "connect": min(remaining, 10.0),
                                "read": remaining,
                                "write": remaining,
                                "pool": remaining,
                            }
                        },
                    )
                )
            except HttpError:
                raise
            except (httpcore.TimeoutException, httpcore.NetworkError, httpcore.ProtocolError, OSError) as exc:
                raise _transport_error(exc) from None
            except httpcore.UnsupportedProtocol:
                raise HttpError("invalid_url", "the URL must be http or https with a host") from None
            status = response.status
            if status not in _REDIRECT_STATUSES or not redirect_prefixes:
                break
            location = Headers(response.headers).get("location", "")
            responses.close()
            target = urljoin(current, location)
            if not _redirect_allowed(target, redirect_prefixes):
                raise HttpError("redirect", "redirect to a location that is not allowed")
            if status == 303 or (status in {301, 302} and method.upper() == "POST"):
                method, json, data = "GET", None, None
            current = target
        else:
            raise HttpError("redirect", "too many redirects")
        yield StreamedResponse(
            status_code=response.status,
            headers=Headers(response.headers),
            url=current,
            _response=response,
            _max_bytes=max_bytes,
        )
    finally:
        responses.close()
        _deadline.reset(token)


def http_request(
    method: str,
    url: str,
    *,
    timeout: float,
    max_bytes: int = 4 * 1024 * 1024,
    policy: NetworkPolicy,
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

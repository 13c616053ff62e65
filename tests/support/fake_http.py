"""A programmable HTTP server on 127.0.0.1 standing in for an external platform in tests.

Register handlers per (method, path); every request is recorded (method, path, query, headers,
raw body) so tests can assert exactly what the service sent.

    with FakeHttpServer() as fake:
        fake.route("POST", "/bot123/sendMessage", json_response({"ok": True}))
        settings.TELEGRAM_API_BASE_URL = fake.url
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    client_port: int = 0  # the client's TCP port: equal ports mean one reused connection

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class FakeResponse:
    status: int = 200
    body: bytes | Iterable[bytes] = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    chunk_interval: float = 0.0  # seconds between body chunks (a slow, dripping server)


Handler = Callable[[RecordedRequest], FakeResponse]


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Handler:
    payload = json.dumps(body).encode()
    return lambda request: FakeResponse(
        status, payload, {"Content-Type": "application/json", **(headers or {})}
    )


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024  # hundreds of clients connect at once in the concurrency tests
    owner: FakeHttpServer


class _RequestHandler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        return

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        parts = urlsplit(self.path)
        request = RecordedRequest(
            method=self.command,
            path=parts.path,
            query=parse_qs(parts.query),
            headers={k: v for k, v in self.headers.items()},
            body=body,
            client_port=self.client_address[1],
        )
        owner = self.server.owner
        with owner.lock:
            owner.requests.append(request)
        handler = owner.find(self.command, parts.path)
        response = handler(request) if handler else FakeResponse(404, b'{"error":"no route"}')
        if response.delay:
            time.sleep(response.delay)
        chunks = [response.body] if isinstance(response.body, bytes) else list(response.body)
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        if response.chunk_interval or not isinstance(response.body, bytes):
            self.send_header("Connection", "close")
            self.end_headers()
            try:
                for chunk in chunks:
                    self.wfile.write(chunk)
                    self.wfile.flush()
                    if response.chunk_interval:
                        time.sleep(response.chunk_interval)
            except (BrokenPipeError, ConnectionResetError):
                pass
            self.close_connection = True
            return
        self.send_header("Content-Length", str(len(chunks[0])))
        self.end_headers()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # client gave up
            self.wfile.write(chunks[0])

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle  # noqa: N815


class FakeHttpServer:
    def __init__(self, host: str = "127.0.0.1") -> None:
        self._server = _Server((host, 0), _RequestHandler)
        self._server.owner = self
        self.routes: dict[tuple[str, str], Handler] = {}
        self.prefix_routes: list[tuple[str, str, Handler]] = []
        self.requests: list[RecordedRequest] = []
        self.lock = threading.Lock()
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def route(self, method: str, path: str, handler: Handler) -> None:
        self.routes[(method.upper(), path)] = handler

    def route_prefix(self, method: str, prefix: str, handler: Handler) -> None:
        self.prefix_routes.append((method.upper(), prefix, handler))

    def find(self, method: str, path: str) -> Handler | None:
        if (method, path) in self.routes:
            return self.routes[(method, path)]
        for route_method, prefix, handler in self.prefix_routes:
            if route_method == method and path.startswith(prefix):
                return handler
        return None

    def start(self) -> FakeHttpServer:
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeHttpServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def free_port() -> int:
    """A loopback port with nothing listening (for "connection refused" cases)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]

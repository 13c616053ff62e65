"""A small, real A2A agent over HTTP, for demos and tests: speaks A2A 1.0 and 0.3 on one endpoint.

A request is answered in 1.0 when it carries `A2A-Version: 1.0` or calls `SendMessage`, else in
0.3 (`message/send`). It echoes the prompt (or a fixed reply), optionally after a delay, and
keeps the messages it received, and in which version, so tests can see exactly what reached it.
Its agent card (1.0 `supportedInterfaces` plus the 0.3 fields) is served at
`/.well-known/agent-card.json` and at the legacy `/.well-known/agent.json`.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MAX_REQUEST_BYTES = 1024 * 1024
CARD_PATHS = {"/.well-known/agent-card.json", "/.well-known/agent.json"}


class EchoAgentServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # The agent worker opens hundreds of connections at once; the default backlog (5) would
    # drop their SYNs into the kernel's one-second retry.
    request_queue_size = 1024

    def __init__(self, address: tuple[str, int], *, reply: str | None = None, delay: float = 0.0) -> None:
        super().__init__(address, _Handler)
        self.reply = reply
        self.delay = delay
        self.received: list[dict[str, Any]] = []
        self.versions: list[str] = []  # the A2A version of each received message
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/"

    def agent_card(self) -> dict[str, Any]:
        """A valid 1.0 card listing both versions over JSON-RPC, with the 0.3 fields beside it
        (`url`, `protocolVersion`, `preferredTransport`) so 0.3 clients read it too."""
        return {
            "name": "Echo agent",
            "description": "Answers every message by echoing it.",
            "supportedInterfaces": [
                {"url": self.url, "protocolBinding": "JSONRPC", "protocolVersion": "1.0"},
                {"url": self.url, "protocolBinding": "JSONRPC", "protocolVersion": "0.3"},
            ],
            "version": "1.0.0",
            "capabilities": {"streaming": False, "pushNotifications": False},
            "defaultInputModes": ["text/plain"],
            "defaultOutputModes": ["text/plain"],
            "skills": [{"id": "echo", "name": "Echo", "description": "Echoes the prompt.", "tags": ["echo"]}],
            "url": self.url,
            "protocolVersion": "0.3.0",
            "preferredTransport": "JSONRPC",
        }

    def answer(self, request: dict[str, Any], *, version_header: str = "") -> dict[str, Any]:
        request_id = request.get("id")
        method = request.get("method")
        v1 = version_header.strip().startswith("1") or method == "SendMessage"
        expected = "SendMessage" if v1 else "message/send"
        if request.get("jsonrpc") != "2.0" or method != expected:
            return _rpc_error(request_id, -32601, "Method not found")
        message = (request.get("params") or {}).get("message") or {}
        parts = message.get("parts") if isinstance(message, dict) else None
        text = "\n".join(p.get("text", "") for p in parts or [] if isinstance(p, dict))
        with self.lock:
            self.received.append(message)
            self.versions.append("1.0" if v1 else "0.3")
        if self.delay:
            time.sleep(self.delay)
        reply = self.reply if self.reply is not None else text
        context_id = message.get("contextId") if isinstance(message, dict) else None
        context_id = context_id if isinstance(context_id, str) and context_id else str(uuid.uuid4())
        if v1:
            result: dict[str, Any] = {
                "message": {
                    "messageId": str(uuid.uuid4()),
                    "contextId": context_id,
                    "role": "ROLE_AGENT",
                    "parts": [{"text": reply}],
                }
            }
        else:
            result = {
                "kind": "message",
                "role": "agent",
                "messageId": str(uuid.uuid4()),
                "contextId": context_id,
                "parts": [{"kind": "text", "text": reply}],
            }
        return {"jsonrpc": "2.0", "id": request_id, "result": result}


def _rpc_error(request_id: Any, code: int, message: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": message}}


class _Handler(BaseHTTPRequestHandler):
    server: EchoAgentServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        return

    def _send_json(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path.split("?")[0] in CARD_PATHS:
            self._send_json(200, self.server.agent_card())
        else:
            self._send_json(404, {"error": "not found"})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_REQUEST_BYTES:
            self._send_json(413, {"error": "too large"})
            return
        try:
            request = json.loads(self.rfile.read(length) or b"null")
        except ValueError:
            self._send_json(200, _rpc_error(None, -32700, "Parse error"))
            return
        if not isinstance(request, dict):
            self._send_json(200, _rpc_error(None, -32600, "Invalid Request"))
            return
        self._send_json(200, self.server.answer(request, version_header=self.headers.get("A2A-Version", "")))


def start_echo_agent(
    host: str = "127.0.0.1", port: int = 0, *, reply: str | None = None, delay: float = 0.0
) -> EchoAgentServer:
    """Start an echo agent in a background thread; call `.shutdown()` to stop it."""
    server = EchoAgentServer((host, port), reply=reply, delay=delay)
    threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True, name="echo-agent"
    ).start()
    return server

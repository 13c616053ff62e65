"""Fake A2A agents for `FakeHttpServer` routes: answer the versions they speak, refuse the rest.

fake_http.route("POST", "/", a2a_agent(versions=("0.3",)))   # a 0.3-only agent, no card
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from tests.support.fake_http import FakeResponse, RecordedRequest

METHOD_VERSIONS = {"SendMessage": "1.0", "message/send": "0.3"}


def rpc(request: RecordedRequest, *, result: Any = None, error: dict[str, Any] | None = None) -> FakeResponse:
    body: dict[str, Any] = {"jsonrpc": "2.0", "id": request.json().get("id")}
    body.update({"error": error} if error is not None else {"result": result})
    return FakeResponse(200, json.dumps(body).encode(), {"Content-Type": "application/json"})


def message_result(version: str, text: str) -> dict[str, Any]:
    if version == "1.0":
        return {
            "message": {"messageId": "r", "contextId": "c", "role": "ROLE_AGENT", "parts": [{"text": text}]}
        }
    return {
        "kind": "message",
        "messageId": "r",
        "contextId": "c",
        "role": "agent",
        "parts": [{"kind": "text", "text": text}],
    }


def a2a_agent(
    *, versions: Iterable[str] = ("0.3",), reply: str = "ok", refusal: int = -32601
) -> Callable[[RecordedRequest], FakeResponse]:
    """An agent speaking `versions`; a request in another version gets JSON-RPC error `refusal`
    (-32601 method not found, or -32009 version not supported)."""
    spoken = set(versions)

    def handle(request: RecordedRequest) -> FakeResponse:
        version = METHOD_VERSIONS.get(request.json().get("method"))
        if version not in spoken:
            return rpc(request, error={"code": refusal, "message": "not here"})
        return rpc(request, result=message_result(version, reply))

    return handle


def sent_versions(requests: Iterable[RecordedRequest]) -> list[tuple[str, str, str]]:
    """(method, path, JSON-RPC method or "") of each request, to assert exact sequences."""
    return [(r.method, r.path, r.json().get("method", "") if r.method == "POST" else "") for r in requests]

"""A2A client: JSON-RPC 2.0 `message/send` to a workspace agent, and reply extraction.

Failures raise `A2AError` with a short reason that never contains upstream text or secrets, so
it can be stored in run history and message logs as it is.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from common.http import HttpError, NetworkPolicy, http_request

_FAILED_TASK_STATES = {"failed", "rejected", "canceled", "cancelled"}


class A2AError(Exception):
    """Delivery failed; `reason` is safe to show; `transient` says whether a retry may help."""

    def __init__(self, reason: str, *, transient: bool = False) -> None:
        self.reason = reason
        self.transient = transient
        super().__init__(reason)


@dataclass(frozen=True)
class A2AReply:
    text: str
    kind: str  # "message" or "task"
    task_state: str | None = None
    context_id: str | None = None


def a2a_policy() -> NetworkPolicy:
    return NetworkPolicy(allow_private=settings.A2A_ALLOW_PRIVATE_NETWORKS)


def build_request(
    *,
    text: str,
    message_id: str,
    request_id: str,
    metadata: dict[str, Any] | None = None,
    context_id: str | None = None,
) -> dict[str, Any]:
    message: dict[str, Any] = {
        "role": "user",
        "messageId": message_id,
        "parts": [{"kind": "text", "text": text}],
    }
    if context_id:
        message["contextId"] = context_id
    if metadata:
        message["metadata"] = metadata
    return {
        "jsonrpc": "2.0",
        "id": request_id,
        "method": "message/send",
        "params": {"message": message},
    }


def storable_text(text: str) -> str:
    """Agent text as the database can store it: NUL characters dropped, lone surrogates replaced.

    Replies are upstream data that every caller stores (run excerpts, channel messages); either
    character would make that save fail after the agent had answered.
    """
    return text.replace("\x00", "").encode("utf-8", "replace").decode("utf-8")


def _texts(parts: Any) -> list[str]:
    if not isinstance(parts, list):
        return []
    return [
        storable_text(part["text"])
        for part in parts
        if isinstance(part, dict)
        and part.get("kind", part.get("type", "text")) == "text"
        and isinstance(part.get("text"), str)
    ]


def extract_reply(result: Any) -> A2AReply:
    """The reply text of an A2A Message (`parts`) or Task (`artifacts[].parts`)."""
    if not isinstance(result, dict):
        raise A2AError("agent reply has no result object")
    context_id = result.get("contextId") if isinstance(result.get("contextId"), str) else None
    if "artifacts" in result or result.get("kind") == "task" or "status" in result:
        state = result.get("status", {}).get("state") if isinstance(result.get("status"), dict) else None
        if state in _FAILED_TASK_STATES:
            raise A2AError(f"agent task ended as {state}")
        texts: list[str] = []
        for artifact in result.get("artifacts") or []:
            if isinstance(artifact, dict):
                texts.extend(_texts(artifact.get("parts")))
        if not texts and isinstance(result.get("status"), dict):
            status_message = result["status"].get("message")
            if isinstance(status_message, dict):
                texts.extend(_texts(status_message.get("parts")))
        return A2AReply(text="\n".join(texts), kind="task", task_state=state, context_id=context_id)
    return A2AReply(text="\n".join(_texts(result.get("parts"))), kind="message", context_id=context_id)


def a2a_send(
    *,
    url: str,
    text: str,
    message_id: str | None = None,
    metadata: dict[str, Any] | None = None,
    request_id: str | None = None,
    timeout: float | None = None,
    context_id: str | None = None,
) -> A2AReply:
    """Send one prompt; retries of the same work must pass the same `message_id`.

    `context_id` (sent as `message.contextId`) keeps a conversation together on the agent's side.
    """
    if not url:
        raise A2AError("workspace has no agent url")
    timeout = timeout or settings.A2A_TIMEOUT_SECONDS
    request_id = request_id or uuid.uuid4().hex
    payload = build_request(
        text=text,
        message_id=message_id or str(uuid.uuid4()),
        request_id=request_id,
        metadata=metadata,
        context_id=context_id,
    )
    try:
        response = http_request(
            "POST",
            url,
            json=payload,
            headers={"X-Request-Id": request_id, "Accept": "application/json"},
            timeout=timeout,
            max_bytes=settings.A2A_MAX_RESPONSE_BYTES,
            policy=a2a_policy(),
        )
    except HttpError as exc:
        if exc.kind == "timeout":
            raise A2AError(f"agent did not answer within {timeout:g}s", transient=True) from None
        if exc.kind == "address":
            raise A2AError(f"agent address refused: {exc.reason}") from None
        if exc.kind == "invalid_url":
            raise A2AError("agent url is not valid") from None
        if exc.kind == "too_large":
            raise A2AError("agent reply is too large") from None
        raise A2AError(f"agent unreachable: {exc.reason}", transient=exc.transient) from None
    if not response.ok:
        transient = response.status_code >= 500 or response.status_code == 429
        raise A2AError(f"agent returned HTTP {response.status_code}", transient=transient)
    try:
        body = json.loads(response.content)
    except (ValueError, UnicodeDecodeError):
        raise A2AError("agent reply is not valid JSON") from None
    if not isinstance(body, dict):
        raise A2AError("agent reply is not a JSON-RPC response")
    if body.get("error") is not None:
        error = body["error"]
        code = error.get("code") if isinstance(error, dict) else None
        suffix = f" {code}" if isinstance(code, int) else ""
        raise A2AError(f"agent returned JSON-RPC error{suffix}")
    if "result" not in body:
        raise A2AError("agent reply is not a JSON-RPC response")
    return extract_reply(body["result"])

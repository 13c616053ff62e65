"""A2A client: one JSON-RPC 2.0 prompt to a workspace agent, in A2A 1.0 or 0.3, and its reply.

1.0 (`SendMessage`, header `A2A-Version: 1.0`, proto-JSON shapes: `ROLE_USER`, parts `{"text"}`,
results `{"message": …}` / `{"task": …}`, states `TASK_STATE_*`) and 0.3 (`message/send`,
`kind`-tagged objects, lower-case states). Replies are read leniently: either result shape is
understood whichever version was sent, because agents in the wild mix them.

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
from common.storable import storable_text

PROTOCOL_1_0 = "1.0"
PROTOCOL_0_3 = "0.3"
PROTOCOLS = (PROTOCOL_1_0, PROTOCOL_0_3)  # newest first
VERSION_HEADER = "A2A-Version"
METHODS = {PROTOCOL_1_0: "SendMessage", PROTOCOL_0_3: "message/send"}
# What an agent answers when it does not speak the version it was sent (method unknown to it,
# or the A2A-Version header refused): the signal to try the other version.
VERSION_REFUSED_CODES = frozenset({-32601, -32009})

# JSON-RPC and A2A error codes (0.3 defines -32001..-32007; 1.0 adds -32008 and -32009).
_RPC_ERRORS = {
    -32700: "parse error",
    -32600: "invalid request",
    -32601: "method not found",
    -32602: "invalid params",
    -32603: "internal error",
    -32001: "task not found",
    -32002: "task not cancelable",
    -32003: "push notifications not supported",
    -32004: "unsupported operation",
    -32005: "content type not supported",
    -32006: "invalid agent response",
    -32007: "extended agent card not configured",
    -32008: "extension support required",
    -32009: "version not supported",
}
# 1.0 errors may also name themselves in a google.rpc.ErrorInfo `reason` inside `error.data`.
_ERROR_INFO_REASONS = {label.upper().replace(" ", "_"): label for label in _RPC_ERRORS.values()}

# 1.0 enum names (and numbers) → the 0.3 spelling used in reasons and `A2AReply.task_state`.
_STATE_ALIASES = {
    "TASK_STATE_UNSPECIFIED": "unknown",
    "TASK_STATE_SUBMITTED": "submitted",
    "TASK_STATE_WORKING": "working",
    "TASK_STATE_COMPLETED": "completed",
    "TASK_STATE_FAILED": "failed",
    "TASK_STATE_CANCELED": "canceled",
    "TASK_STATE_INPUT_REQUIRED": "input-required",
    "TASK_STATE_REJECTED": "rejected",
    "TASK_STATE_AUTH_REQUIRED": "auth-required",
    "cancelled": "canceled",
}
_STATE_NUMBERS = (
    "unknown",
    "submitted",
    "working",
    "completed",
    "failed",
    "canceled",
    "input-required",
    "rejected",
    "auth-required",
)
_ERROR_STATES = {"failed", "canceled", "rejected", "auth-required"}
_UNFINISHED_STATES = {"submitted", "working"}


class A2AError(Exception):
    """Delivery failed; `reason` is safe to show; `transient` says whether a retry may help.

    `protocol` is the version of the last request sent ("" when none was sent), `code` the
    JSON-RPC error code the agent answered with, if any, and `answered` whether the agent sent a
    JSON-RPC answer at all (an error or a result that is a failure), not a transport failure.
    """

    def __init__(
        self,
        reason: str,
        *,
        transient: bool = False,
        protocol: str = "",
        code: int | None = None,
        answered: bool = False,
    ) -> None:
        self.reason = reason
        self.transient = transient
        self.protocol = protocol
        self.code = code
        self.answered = answered or code is not None
        super().__init__(reason)

    @property
    def version_refused(self) -> bool:
        return self.code in VERSION_REFUSED_CODES


@dataclass(frozen=True)
class A2AReply:
    text: str
    kind: str  # "message" or "task"
    task_state: str | None = None
    protocol: str = ""
    context_id: str | None = None
    task_id: str | None = None


def a2a_policy() -> NetworkPolicy:
    return NetworkPolicy(allow_private=settings.A2A_ALLOW_PRIVATE_NETWORKS)


def build_request(
    *,
    protocol: str,
    text: str,
    message_id: str,
    request_id: str,
    metadata: dict[str, Any] | None = None,
    context_id: str | None = None,
) -> dict[str, Any]:
    """The JSON-RPC body of one prompt in `protocol`'s shapes."""
    if protocol == PROTOCOL_1_0:
        message: dict[str, Any] = {"role": "ROLE_USER", "messageId": message_id, "parts": [{"text": text}]}
    else:
        message = {"role": "user", "messageId": message_id, "parts": [{"kind": "text", "text": text}]}
    if context_id:
        message["contextId"] = context_id
    if metadata:
        message["metadata"] = metadata
    return {"jsonrpc": "2.0", "id": request_id, "method": METHODS[protocol], "params": {"message": message}}


def _texts(parts: Any) -> list[str]:
    """Text parts: 0.3 tags them `kind: "text"`; a 1.0 text part is the one holding `text`.

    Cleaned for the database: every caller stores replies (run excerpts, channel messages), and a
    NUL or lone surrogate would make that save fail after the agent had answered."""
    if not isinstance(parts, list):
        return []
    return [
        storable_text(part["text"])
        for part in parts
        if isinstance(part, dict)
        and part.get("kind", part.get("type", "text")) == "text"
        and isinstance(part.get("text"), str)
    ]


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def task_state_name(state: Any) -> str | None:
    """A task state of either version in the 0.3 spelling (`TASK_STATE_INPUT_REQUIRED` →
    `input-required`); None when absent, "unrecognised" for anything else."""
    if state is None:
        return None
    if isinstance(state, int) and not isinstance(state, bool):
        return _STATE_NUMBERS[state] if 0 <= state < len(_STATE_NUMBERS) else "unrecognised"
    if not isinstance(state, str):
        return "unrecognised"
    state = _STATE_ALIASES.get(state, state)
    return state if state in _STATE_NUMBERS else "unrecognised"


def _unwrap(result: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """("task" | "message", object) from a 1.0 `{"task"}`/`{"message"}` wrapper or a 0.3 object."""
    for kind in ("task", "message"):
        inner = result.get(kind)
        if isinstance(inner, dict) and not ({"parts", "status", "artifacts", "kind"} & result.keys()):
            return kind, inner
    if "artifacts" in result or result.get("kind") == "task" or "status" in result:
        return "task", result
    return "message", result


def _agent_history_texts(history: Any) -> list[str]:
    if not isinstance(history, list):
        return []
    for message in reversed(history):
        if isinstance(message, dict) and message.get("role") in {"agent", "ROLE_AGENT"}:
            return _texts(message.get("parts"))
    return []


def extract_reply(result: Any, *, protocol: str = "") -> A2AReply:
    """The reply of an A2A Message (`parts`) or Task (`artifacts[].parts`, else `status.message`,
    else the last agent message of `history`), in either version's shape.

    A task that ended failed, canceled, rejected, waiting for authorization or in an unknown
    state is a failure; one still submitted or working did not finish (this client does not
    poll); one waiting for input succeeds when it asks something (the question is the reply).
    """
    if not isinstance(result, dict):
        raise A2AError("agent reply has no result object", protocol=protocol)
    kind, body = _unwrap(result)
    context_id = _str_or_none(body.get("contextId"))
    if kind == "message":
        return A2AReply(
            text="\n".join(_texts(body.get("parts"))),
            kind="message",
            protocol=protocol,
            context_id=context_id,
            task_id=_str_or_none(body.get("taskId")),
        )
    status = body.get("status") if isinstance(body.get("status"), dict) else {}
    state = task_state_name(status.get("state"))
    if state in _ERROR_STATES:
        raise A2AError(f"agent task ended as {state}", protocol=protocol, answered=True)
    if state in {"unknown", "unrecognised"}:
        raise A2AError("agent task ended in an unknown state", protocol=protocol, answered=True)
    if state in _UNFINISHED_STATES:
        raise A2AError(f"agent task did not finish (still {state})", protocol=protocol, answered=True)
    texts: list[str] = []
    for artifact in body.get("artifacts") or []:
        if isinstance(artifact, dict):
            texts.extend(_texts(artifact.get("parts")))
    if not texts and isinstance(status.get("message"), dict):
        texts = _texts(status["message"].get("parts"))
    if not texts:
        texts = _agent_history_texts(body.get("history"))
    text = "\n".join(texts)
    if state == "input-required" and not text.strip():
        raise A2AError(
            "agent task ended as input-required with no question", protocol=protocol, answered=True
        )
    return A2AReply(
        text=text,
        kind="task",
        task_state=state,
        protocol=protocol,
        context_id=context_id,
        task_id=_str_or_none(body.get("id")),
    )


def rpc_error_reason(error: Any) -> tuple[str, int | None]:
    """A short reason for a JSON-RPC `error` object, from its code (or a 1.0 ErrorInfo reason);
    the agent's own message is never used."""
    code = error.get("code") if isinstance(error, dict) else None
    if not isinstance(code, int) or isinstance(code, bool):
        return "agent returned a JSON-RPC error", None
    label = _RPC_ERRORS.get(code)
    if label is None and isinstance(error.get("data"), list):
        for detail in error["data"]:
            if isinstance(detail, dict) and detail.get("reason") in _ERROR_INFO_REASONS:
                label = _ERROR_INFO_REASONS[detail["reason"]]
                break
    suffix = f" ({label})" if label else ""
    return f"agent returned JSON-RPC error {code}{suffix}", code


def a2a_send(
    *,
    url: str,
    text: str,
    protocol: str,
    message_id: str | None = None,
    metadata: dict[str, Any] | None = None,
    request_id: str | None = None,
    timeout: float | None = None,
    context_id: str | None = None,
) -> A2AReply:
    """Send one prompt in `protocol`; retries of the same work must pass the same `message_id`."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown A2A protocol {protocol!r}")
    if not url:
        raise A2AError("workspace has no agent url")
    timeout = timeout or settings.A2A_TIMEOUT_SECONDS
    request_id = request_id or uuid.uuid4().hex
    payload = build_request(
        protocol=protocol,
        text=text,
        message_id=message_id or str(uuid.uuid4()),
        request_id=request_id,
        metadata=metadata,
        context_id=context_id,
    )
    headers = {"X-Request-Id": request_id, "Accept": "application/json", VERSION_HEADER: protocol}
    try:
        response = http_request(
            "POST",
            url,
            json=payload,
            headers=headers,
            timeout=timeout,
            max_bytes=settings.A2A_MAX_RESPONSE_BYTES,
            policy=a2a_policy(),
        )
    except HttpError as exc:
        raise _transport_failure(exc, timeout=timeout, protocol=protocol) from None
    if not response.ok:
        transient = response.status_code >= 500 or response.status_code == 429
        raise A2AError(f"agent returned HTTP {response.status_code}", transient=transient, protocol=protocol)
    try:
        body = json.loads(response.content)
    except (ValueError, UnicodeDecodeError):
        raise A2AError("agent reply is not valid JSON", protocol=protocol) from None
    if not isinstance(body, dict):
        raise A2AError("agent reply is not a JSON-RPC response", protocol=protocol)
    if body.get("error") is not None:
        reason, code = rpc_error_reason(body["error"])
        raise A2AError(reason, protocol=protocol, code=code)
    if "result" not in body:
        raise A2AError("agent reply is not a JSON-RPC response", protocol=protocol)
    return extract_reply(body["result"], protocol=protocol)


def _transport_failure(exc: HttpError, *, timeout: float, protocol: str) -> A2AError:
    if exc.kind == "timeout":
        return A2AError(f"agent did not answer within {timeout:g}s", transient=True, protocol=protocol)
    if exc.kind == "address":
        return A2AError(f"agent address refused: {exc.reason}", protocol=protocol)
    if exc.kind == "invalid_url":
        return A2AError("agent url is not valid", protocol=protocol)
    if exc.kind == "too_large":
        return A2AError("agent reply is too large", protocol=protocol)
    return A2AError(f"agent unreachable: {exc.reason}", transient=exc.transient, protocol=protocol)

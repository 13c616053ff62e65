"""Delivering a prompt to a workspace agent, counted as in flight while it runs (for busy checks)."""

from __future__ import annotations

from typing import Any

from common.db import retry_on_lost_connection
from workspaces.a2a import A2AError, A2AReply, a2a_send
from workspaces.models import AgentDelivery, Workspace


def deliver_prompt(
    *,
    workspace: Workspace,
    text: str,
    message_id: str,
    source: str,
    reference: str = "",
    metadata: dict[str, Any] | None = None,
    request_id: str | None = None,
) -> A2AReply:
    """Send `text` to the workspace agent. `source` names the caller (schedule, channel, ...)."""
    if not workspace.url:
        raise A2AError("workspace has no agent url")
    marker = AgentDelivery.objects.create(workspace=workspace, source=source, reference=str(reference)[:64])
    try:
        return a2a_send(
            url=workspace.url,
            text=text,
            message_id=message_id,
            metadata=metadata,
            request_id=request_id,
        )
    finally:
        # The agent may have answered: a connection lost meanwhile must not lose the answer.
        retry_on_lost_connection(AgentDelivery.objects.filter(pk=marker.pk).delete)

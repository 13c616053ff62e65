"""Delivering a prompt to a workspace agent, counted as in flight while it runs (for busy checks),
in the A2A version the workspace asks for or, with `auto`, the one the agent speaks.

An agent may think for minutes: the database connection is given back while it does (the
in-flight marker is committed first and removed afterwards), so an I/O worker holding a thousand
calls needs only a handful of connections. A workspace never has more deliveries in flight than
its capacity (`max_concurrent_tasks`, bounded by WORKSPACE_MAX_CONCURRENT_DELIVERIES): a delivery
past it raises `WorkspaceAtCapacity` before anything is sent, and its job waits as a due row.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from common.db import retry_on_lost_connection
from observability.metrics import agent_call_timer
from workspaces import a2a_protocol
from workspaces.a2a import PROTOCOL_0_3, PROTOCOL_1_0, A2AError, A2AReply, a2a_send
from workspaces.models import AgentDelivery, Workspace
from workspaces.selectors import delivery_capacity, delivery_stale_before

SCHEDULE_SOURCE = "schedule"


class WorkspaceAtCapacity(Exception):
    """The workspace already has as many deliveries in flight as it may; nothing was sent."""

    def __init__(self, *, in_flight: int, capacity: int) -> None:
        super().__init__(f"workspace busy: {in_flight}/{capacity} deliveries in flight")
        self.retry_after = settings.DELIVERY_RECHECK_SECONDS


def deliver_prompt(
    *,
    workspace: Workspace,
    text: str,
    message_id: str,
    source: str,
    reference: str = "",
    metadata: dict[str, Any] | None = None,
    request_id: str | None = None,
    context_id: str | None = None,
    admitted: AgentDelivery | None = None,
) -> A2AReply:
    """Send `text` to the workspace agent. `source` names the caller (schedule, channel, ...).

    `admitted`: the in-flight marker the caller registered itself (`deliveries_register`, under
    its own busy check); otherwise the delivery is admitted here, or `WorkspaceAtCapacity`.
    The marker is removed when the call ends. The reply (or the `A2AError`) says which version
    was used in `protocol`.
    """
    if not workspace.url:
        if admitted is not None:
            AgentDelivery.objects.filter(pk=admitted.pk).delete()
        raise A2AError("workspace has no agent url")
    # Committed before the call; common.http gives the connection back while the agent thinks.
    marker = admitted or _admit(workspace=workspace, source=source, reference=str(reference)[:64])

    def send(protocol: str) -> A2AReply:
        return a2a_send(
            url=workspace.url,
            text=text,
            protocol=protocol,
            message_id=message_id,
            metadata=metadata,
            request_id=request_id,
            context_id=context_id,
        )

    try:
        with agent_call_timer(source=source):
            if workspace.a2a_protocol != a2a_protocol.AUTO:
                return send(workspace.a2a_protocol)
            return _send_auto(workspace=workspace, send=send)
    finally:
        # The agent may have answered: a connection lost meanwhile must not lose the answer.
        retry_on_lost_connection(AgentDelivery.objects.filter(pk=marker.pk).delete)


def deliveries_register(entries: Sequence[tuple[Workspace, str, str]]) -> list[AgentDelivery]:
    """Register deliveries the caller admitted itself as in flight, in one INSERT: (workspace,
    source, reference) each. For schedule runs, whose own busy check (the agent's reported load,
    the busy grace of the SPEC) and claim run in the same transaction, under the workspaces'
    row locks."""
    return AgentDelivery.objects.bulk_create(
        [
            AgentDelivery(workspace=workspace, source=source, reference=str(reference)[:64])
            for workspace, source, reference in entries
        ]
    )


def _admit(*, workspace: Workspace, source: str, reference: str) -> AgentDelivery:
    """Register the delivery as in flight, if the workspace has room for it; serialised per
    workspace by its row lock so two cannot both take the last place."""
    with transaction.atomic():
        Workspace.objects.select_for_update().filter(pk=workspace.pk).values_list("pk").first()
        capacity = delivery_capacity(workspace)
        in_flight = AgentDelivery.objects.filter(
            workspace=workspace, started_at__gte=delivery_stale_before(timezone.now())
        ).count()
        if in_flight >= capacity:
            raise WorkspaceAtCapacity(in_flight=in_flight, capacity=capacity)
        return AgentDelivery.objects.create(workspace=workspace, source=source, reference=reference)


def _send_auto(*, workspace: Workspace, send: Callable[[str], A2AReply]) -> A2AReply:
    """Remembered choice, else the card's, else 1.0; a version refusal is retried once in the
    other version (same messageId, so the agent sees one message), and what worked is kept."""
    first = a2a_protocol.protocol_remembered(workspace=workspace)
    if first is None:
        first = a2a_protocol.agent_card_protocol(url=workspace.url)
        if first is not None:
            a2a_protocol.protocol_remember(workspace=workspace, protocol=first)
    first = first or PROTOCOL_1_0
    try:
        reply = send(first)
    except A2AError as exc:
        if not exc.version_refused:
            _learn(workspace=workspace, protocol=first, understood=exc.answered)
            raise
    else:
        _learn(workspace=workspace, protocol=first, understood=True)
        return reply
    second = PROTOCOL_0_3 if first == PROTOCOL_1_0 else PROTOCOL_1_0
    try:
        reply = send(second)
    except A2AError as exc:
        if exc.version_refused:
            a2a_protocol.protocol_forget(workspace=workspace)
        else:
            _learn(workspace=workspace, protocol=second, understood=exc.answered)
        raise
    _learn(workspace=workspace, protocol=second, understood=True)
    return reply


def _learn(*, workspace: Workspace, protocol: str, understood: bool) -> None:
    """Remember `protocol` once the agent answered in it (a transport failure proves nothing)."""
    if understood and a2a_protocol.protocol_remembered(workspace=workspace) != protocol:
        a2a_protocol.protocol_remember(workspace=workspace, protocol=protocol)

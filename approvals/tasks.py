"""Celery tasks: tell the requesting agent about a decision or expiry; sweep expired approvals."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings

from approvals import chat, services
from workspaces.a2a import A2AError


def retry_delay(retries: int) -> int:
    """Exponential backoff from APPROVAL_NOTIFY_RETRY_SECONDS, capped at ten minutes."""
    base = settings.APPROVAL_NOTIFY_RETRY_SECONDS
    return min(base * (2**retries), 600)


@shared_task(
    bind=True,
    name="approvals.notify_agent",
    max_retries=settings.APPROVAL_NOTIFY_MAX_RETRIES,
    acks_late=True,
)
def notify_agent(self, approval_id: str) -> str:
    try:
        return services.approval_notify(
            approval_id=approval_id, final_attempt=self.request.retries >= self.max_retries
        )
    except A2AError as exc:  # transient, and retries remain
        raise self.retry(countdown=retry_delay(self.request.retries), exc=exc) from None


@shared_task(name="approvals.expire_due")
def expire_due() -> int:
    """The Beat sweep: expire lapsed approvals, then requeue notifications that never left."""
    expired = services.approval_expire_due()
    services.approval_requeue_unsent()
    return expired


@shared_task(bind=True, name="approvals.post_to_chats", max_retries=5, acks_late=True)
def post_to_chats(self, approval_id: str) -> int:
    """Post a new approval, with buttons, to the workspace's channels with `approvals: true`."""
    try:
        return chat.approval_post_to_chats(approval_id=approval_id)
    except chat.PostNotSent as exc:
        raise self.retry(countdown=retry_delay(self.request.retries), exc=exc) from None


@shared_task(name="approvals.refresh_chats", acks_late=True)
def refresh_chats(approval_id: str) -> int:
    """Edit the posted chat messages of an approval to show its outcome."""
    return chat.approval_refresh_chats(approval_id=approval_id)

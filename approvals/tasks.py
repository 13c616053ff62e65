"""Celery tasks: tell the requesting agent about a decision or expiry; sweep expired approvals."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings

from approvals import chat, services
from approvals.models import NOTICE
from common.outbox import outbox_step
from workspaces.a2a import A2AError
from workspaces.delivery import WorkspaceAtCapacity


def retry_delay(retries: int) -> int:
    """Exponential backoff from APPROVAL_NOTIFY_RETRY_SECONDS, capped at ten minutes."""
    base = settings.APPROVAL_NOTIFY_RETRY_SECONDS
    return min(base * (2**retries), 600)


@shared_task(name="approvals.notify_agent", acks_late=True, ignore_result=True)
def notify_agent(approval_id: str, attempt: int) -> None:
    """Attempt `attempt` of an approval's notice (published by the relay; a transient failure
    makes the row due again after the backoff, the last attempt records the failure)."""

    def body() -> float | None:
        try:
            services.approval_notify(
                approval_id=approval_id, final_attempt=attempt > settings.APPROVAL_NOTIFY_MAX_RETRIES
            )
        except WorkspaceAtCapacity as exc:  # nothing sent: not an attempt of the notice
            return exc.retry_after
        except A2AError:  # transient, and retries remain
            return retry_delay(attempt - 1)
        return None

    outbox_step(kind=NOTICE, pk=approval_id, attempt=int(attempt), body=body)


@shared_task(name="approvals.expire_due")
def expire_due() -> int:
    """The Beat sweep: expire lapsed approvals (the relay then publishes their notices)."""
    return services.approval_expire_due()


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

"""Celery tasks: tell the requesting agent about a decision or expiry, post and edit approvals
in chats, sweep expired approvals."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings
from django.db import transaction

from approvals import chat, services
from approvals.models import APPROVAL_CHAT, NOTICE, Approval
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


@shared_task(name="approvals.sync_chat_post", acks_late=True, ignore_result=True)
def sync_chat_post(post_id: str, attempt: int) -> None:
    """Attempt `attempt` of an approval's chat post (published by the relay): post it, or edit
    it to the approval's outcome; a transient platform failure makes the row due again after
    the backoff, up to `chat.CHAT_POST_MAX_RETRIES` tries a step."""

    def body() -> float | None:
        try:
            chat.approval_chat_post_sync(post_id=post_id)
        except chat.PostNotSent as exc:
            return retry_delay(exc.tries - 1)
        return None

    outbox_step(kind=APPROVAL_CHAT, pk=post_id, attempt=int(attempt), body=body)


# The tasks requests published before chat posts were rows. Kept so that messages still queued
# from before an upgrade do their work: they only write rows, which the relay then publishes.


@shared_task(name="approvals.post_to_chats", acks_late=True, ignore_result=True)
def post_to_chats(approval_id: str) -> int:
    """Create the approval's missing chat posts (due) and make the existing ones due."""
    approval = Approval.objects.filter(pk=approval_id).first()
    if approval is None:
        return 0
    with transaction.atomic():
        created = chat.approval_chat_posts_create(approval=approval)
        chat.approval_chat_posts_due([approval.pk])
    return created


@shared_task(name="approvals.refresh_chats", acks_late=True, ignore_result=True)
def refresh_chats(approval_id: str) -> int:
    """Make the approval's chat posts due (each is edited if its shown outcome is stale)."""
    with transaction.atomic():
        return chat.approval_chat_posts_due([approval_id])

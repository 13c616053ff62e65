"""Celery tasks: tell the requesting agent about a decision or expiry; sweep expired approvals."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings

from approvals import services
from approvals.models import NOTICE
from common.outbox import outbox_step
from workspaces.a2a import A2AError


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
        except A2AError:  # transient, and retries remain
            return retry_delay(attempt - 1)
        return None

    outbox_step(kind=NOTICE, pk=approval_id, attempt=int(attempt), body=body)


@shared_task(name="approvals.expire_due")
def expire_due() -> int:
    """The Beat sweep: expire lapsed approvals (the relay then publishes their notices)."""
    return services.approval_expire_due()

"""Background steps of channels: thin wrappers that call the services.

The relay publishes them for stored rows (common.outbox); a retry is the row made due again
after its delay (not a sleep), so a waiting message holds no worker.
"""

from __future__ import annotations

from celery import shared_task

from channels_app import services
from channels_app.models import CLEANUP, INBOUND, OUTBOUND
from common.outbox import outbox_step


@shared_task(name="channels.process_inbound", acks_late=True, ignore_result=True)
def process_inbound(message_id: str, attempt: int) -> None:
    outbox_step(
        kind=INBOUND,
        pk=message_id,
        attempt=int(attempt),
        body=lambda: services.message_process_inbound(message_id=message_id),
    )


@shared_task(name="channels.send_message", acks_late=True, ignore_result=True)
def send_message(message_id: str, attempt: int) -> None:
    outbox_step(
        kind=OUTBOUND,
        pk=message_id,
        attempt=int(attempt),
        body=lambda: services.message_send_attempt(message_id=message_id),
    )


@shared_task(name="channels.run_cleanup", acks_late=True, ignore_result=True)
def run_cleanup(cleanup_id: str, attempt: int) -> None:
    """Attempt `attempt` of a deleted channel's `on_disable` (a `ChannelCleanup` row); a
    transient failure makes the row due again after the backoff."""

    def body() -> float | None:
        try:
            services.channel_cleanup_run(cleanup_id=cleanup_id)
        except services.CleanupNotDone as exc:
            return services.retry_delay(attempt=exc.tries, retry_after=None)
        return None

    outbox_step(kind=CLEANUP, pk=cleanup_id, attempt=int(attempt), body=body)


@shared_task(name="channels.delete_telegram_webhook", ignore_result=True)
def delete_telegram_webhook(
    channel_id: str, credential_key: str, sealed_config: str, platform: str = "telegram"
) -> None:
    """What deletions published before `ChannelCleanup` rows: kept so that messages still queued
    from before an upgrade are not lost; it only writes the row (`platform` defaults to Telegram
    for messages older still)."""
    services.channel_cleanup_create(
        channel_id=channel_id, platform=platform, credential_key=credential_key, sealed_config=sealed_config
    )

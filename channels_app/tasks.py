"""Background steps of channels: thin wrappers that call the services.

The relay publishes them for stored rows (common.outbox); a retry is the row made due again
after its delay (not a sleep), so a waiting message holds no worker.
"""

from __future__ import annotations

from celery import shared_task

from channels_app import services
from channels_app.models import INBOUND, OUTBOUND
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


@shared_task(name="channels.delete_telegram_webhook")
def delete_telegram_webhook(
    channel_id: str, credential_key: str, sealed_config: str, platform: str = "telegram"
) -> None:
    """A deleted channel's `on_disable` (queued by `services.disable_after_delete`). The name is
    kept from when only Telegram had hooks, and `platform` defaults to it, so messages queued
    before still run."""
    services.channel_disable_hook_sealed(
        channel_id=channel_id, platform=platform, credential_key=credential_key, sealed_config=sealed_config
    )

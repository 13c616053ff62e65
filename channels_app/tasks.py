"""Background steps of channels: thin wrappers that call the services and reschedule retries.

Retries are new deliveries with a countdown (not sleeps), so a waiting message holds no worker.
"""

from __future__ import annotations

from celery import shared_task
from django.conf import settings

from channels_app import services


@shared_task(name="channels.process_inbound")
def process_inbound(message_id: str) -> None:
    delay = services.message_process_inbound(message_id=message_id)
    if delay is not None:
        process_inbound.apply_async(args=[message_id], countdown=delay)


@shared_task(name="channels.send_message")
def send_message(message_id: str) -> None:
    delay = services.message_send_attempt(message_id=message_id)
    if delay is not None:
        send_message.apply_async(args=[message_id], countdown=delay)


@shared_task(name="channels.requeue_stale")
def requeue_stale() -> int:
    return services.message_requeue_stale(older_than_seconds=settings.CHANNEL_REQUEUE_AFTER_SECONDS)


@shared_task(name="channels.delete_telegram_webhook")
def delete_telegram_webhook(channel_id: str, credential_key: str, sealed_config: str) -> None:
    services.telegram_webhook_unregister_sealed(
        channel_id=channel_id, credential_key=credential_key, sealed_config=sealed_config
    )

"""What every part of the channel services shares: the error answers, the adapter lookup, the
inbound URL, the per-message claim and the retry delay."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db.models import F
from django.utils import timezone

from channels_app.adapters import ADAPTERS, get_adapter
from channels_app.adapters.base import ChannelAdapter
from channels_app.models import Channel, ChannelMessage
from common.errors import ApplicationError, Conflict

# One logger for the package: operators filter on the name it always had.
LOGGER_NAME = "channels_app.services"


class InvalidConfig(ApplicationError):
    code = "invalid_config"
    message = "The channel config is not valid for this platform."


class InvalidSignature(ApplicationError):
    status_code = 401
    code = "invalid_signature"
    message = "The request signature or token does not verify."


class PlatformError(ApplicationError):
    status_code = 502
    code = "platform_error"
    message = "The platform refused or failed the request."


class NotSupported(ApplicationError):
    code = "not_supported"
    message = "This platform does not support this operation."


class InvalidToken(ApplicationError):
    code = "invalid_token"
    message = "The platform refused the bot token."


class ApplicationTaken(Conflict):
    message = "This platform application is connected to an enabled channel of another workspace."


def inbound_url(*, channel: Channel, base_url: str | None = None) -> str:
    base = (settings.PUBLIC_BASE_URL or base_url or "").rstrip("/")
    return f"{base}/webhooks/{channel.platform}?channel={channel.pk}"


def adapter_for(platform: str) -> ChannelAdapter:
    adapter = get_adapter(platform)
    if adapter is None:
        raise InvalidConfig(
            "platform is not supported.",
            code="invalid_request",
            details={"platform": [f"Must be one of: {', '.join(ADAPTERS)}."]},
        )
    return adapter


def retry_delay(*, attempt: int, retry_after: float | None) -> float:
    """Seconds before the next attempt: the platform's own wait when it gives one, else capped
    exponential backoff (base, 2×base, 4×base … up to the cap)."""
    if retry_after is not None:
        return min(max(retry_after, 0.0), float(settings.CHANNEL_SEND_RETRY_AFTER_MAX_SECONDS))
    base = float(settings.CHANNEL_SEND_BACKOFF_SECONDS)
    return min(base * (2 ** max(attempt - 1, 0)), float(settings.CHANNEL_SEND_BACKOFF_MAX_SECONDS))


def count_message(channel_id: Any) -> None:
    Channel.objects.filter(pk=channel_id).update(
        message_count=F("message_count") + 1, last_message_at=timezone.now()
    )


def message_claim(message: ChannelMessage) -> bool:
    """Count one more attempt, only if nobody else did since `message` was read.

    A compare-and-set on `attempts`: of two runs that read the same row, exactly one proceeds.
    """
    claimed = ChannelMessage.objects.filter(
        pk=message.pk, status=message.status, attempts=message.attempts
    ).update(attempts=F("attempts") + 1, updated_at=timezone.now())
    if claimed:
        message.attempts += 1
    return bool(claimed)


def message_unclaim(message: ChannelMessage) -> None:
    """Give back the attempt `message_claim` counted (the delivery never started)."""
    ChannelMessage.objects.filter(pk=message.pk, attempts=message.attempts).update(attempts=F("attempts") - 1)
    message.attempts -= 1

"""Discovery: what a bot token can see (its identity, the chats it is in), for setting up a channel."""

from __future__ import annotations

from channels_app.adapters.base import Discovery, DiscoveryError
from channels_app.services.base import InvalidToken, NotSupported, PlatformError, adapter_for


def channel_discover(*, platform: str, bot_token: str) -> Discovery:
    adapter = adapter_for(platform)
    if not adapter.supports_discover:
        raise NotSupported(f"Discovery is not supported for {platform}.")
    try:
        return adapter.discover(bot_token=bot_token)
    except DiscoveryError as exc:
        if exc.code == "invalid_token":
            raise InvalidToken(exc.reason) from None
        raise PlatformError(exc.reason) from None

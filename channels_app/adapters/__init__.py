"""Platform adapters, one class per platform behind `ChannelAdapter`."""

from __future__ import annotations

from channels_app.adapters.base import ChannelAdapter
from channels_app.adapters.discord import DiscordAdapter
from channels_app.adapters.lark import LarkAdapter
from channels_app.adapters.slack import SlackAdapter
from channels_app.adapters.telegram import TelegramAdapter

ADAPTERS: dict[str, ChannelAdapter] = {
    adapter.platform: adapter
    for adapter in (TelegramAdapter(), SlackAdapter(), DiscordAdapter(), LarkAdapter())
}
PLATFORMS: tuple[str, ...] = tuple(ADAPTERS)


def get_adapter(platform: str) -> ChannelAdapter | None:
    return ADAPTERS.get(platform)

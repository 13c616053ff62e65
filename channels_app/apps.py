from django.apps import AppConfig


class ChannelsAppConfig(AppConfig):
    """Social channels (Telegram, Slack, Discord, Lark) connecting chats to workspace agents."""

    name = "channels_app"
    verbose_name = "Channels"

    def ready(self) -> None:
        from channels_app import signals  # noqa: F401 - unregisters webhooks on workspace deletion

"""Chat commands the service answers itself, never sent to the agent.

Telegram: `/start`, `/help`, `/reset`, with or without the `@botname` suffix Telegram adds in
groups. Slack, Discord and Lark: `reset` (or the `/reset` slash command where the platform has
them; a leading @-mention of the bot is ignored).
"""

from __future__ import annotations

import re

from channels_app.models import ChannelMessage

START, HELP, RESET = "start", "help", "reset"
_TELEGRAM = re.compile(r"/(start|help|reset)(?:@[A-Za-z0-9_]{1,64})?(?:\s.*)?", re.DOTALL | re.IGNORECASE)
# Slack `<@U123>` and Lark `@_user_1` mentions in front of the word.
_MENTION = re.compile(r"^(?:<@[A-Z0-9]+>|@_user_\d+|@\S+)\s*")

HELP_TEXT = {
    "telegram": (
        "Messages you send here go to the agent, which remembers this conversation.\n"
        "/start: show whether this chat is connected\n"
        "/help: this list\n"
        "/reset: start a new conversation (the agent forgets the earlier messages)"
    ),
    "other": (
        "Messages you send here go to the agent, which remembers this conversation.\n"
        "reset: start a new conversation (the agent forgets the earlier messages)"
    ),
}


def command_of(*, platform: str, message: ChannelMessage) -> str | None:
    """The command `message` is, or None when it is for the agent."""
    text = (message.text or "").strip()
    if platform == "telegram":
        match = _TELEGRAM.fullmatch(text)
        return match.group(1).lower() if match else None
    slash = str((message.meta or {}).get("command") or "")
    if slash:  # a Slack slash command: `/reset`, or `/agent reset`
        return RESET if slash.lower() == "/reset" or text.lower() == "reset" else None
    word = _MENTION.sub("", text, count=1).strip().lower()
    return RESET if word in ("reset", "/reset") else None


def start_text(*, workspace_name: str, chat_id: str, allowed: bool) -> str:
    reach = (
        "Your messages here reach the agent."
        if allowed
        else "This chat or sender is not in the channel's allowlist: messages are not sent to the agent."
    )
    return f"Connected to the agent of workspace “{workspace_name}”.\nChat id: {chat_id}\n{reach}"


def help_text(*, platform: str) -> str:
    return HELP_TEXT["telegram" if platform == "telegram" else "other"]


RESET_TEXT = "Started a new conversation: the agent will not see the earlier messages."
NOT_ALLOWED_TEXT = "This chat or sender is not in the channel's allowlist."

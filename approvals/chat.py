"""Approvals in chat: post each approval with buttons to the workspace's channels that ask for
them, decide it from a button press, and keep the posted message showing the outcome.

Buttons carry `ap:<token>:<code>`: a random token per post (stored as its SHA-256 only, never
the approval id) and the choice (`a` approve, `a<n>` approve with option n, `r` reject). A press
arrives on the channel's webhook, verified like any other request (Telegram secret header,
Slack signing secret on the raw form body, Discord Ed25519), and is accepted only for a post
made by the same bot or app. Only the channel's `approvers` may decide, through
`approvals.services.approval_decide` (one conditional UPDATE: exactly one decision however many
presses), as `<platform>:<user id>`; everyone else gets a private refusal. Every change of the
approval (a press, the console, the API, expiry) edits the posted messages once.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from datetime import UTC
from typing import Any
from uuid import UUID

from celery.exceptions import CeleryError
from django.conf import settings
from django.db.models import Q
from kombu.exceptions import KombuError

from access.principal import Principal
from approvals.models import Approval, ApprovalChatPost, ApprovalStatus
from channels_app.adapters import ADAPTERS
from channels_app.adapters.base import InboundEvent, SendError, http_failure, json_body, platform_call
from channels_app.models import Channel

logger = logging.getLogger(__name__)

PREFIX = "ap"
CHAT_PLATFORMS = ("telegram", "slack", "discord")
DESCRIPTION_MAX_CHARS = 500
BUTTON_LABEL_MAX_CHARS = 70


class PostNotSent(Exception):
    """A transient failure while posting: the task retries."""


# --- tokens and button data -------------------------------------------------------------------


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def button_codes(approval: Approval) -> list[tuple[str, str]]:
    """(code, label) of each button: one approve per option (or one plain approve), then reject."""
    approve = [
        (f"a{i}", f"Approve: {option}"[:BUTTON_LABEL_MAX_CHARS]) for i, option in enumerate(approval.options)
    ]
    return [*(approve or [("a", "Approve")]), ("r", "Reject")]


def _decision_of(approval: Approval, code: str) -> tuple[str, str | None] | None:
    if code == "r":
        return "reject", None
    if code == "a" and not approval.options:
        return "approve", None
    if code.startswith("a") and code[1:].isdigit() and int(code[1:]) < len(approval.options):
        return "approve", approval.options[int(code[1:])]
    return None


# --- what the chat shows ------------------------------------------------------------------------


def _utc(moment: Any) -> str:
    return moment.astimezone(UTC).strftime(settings.REST_FRAMEWORK["DATETIME_FORMAT"])


def render_text(approval: Approval) -> str:
    lines = [f"Approval requested: {approval.action}"]
    if approval.description:
        lines.append(approval.description[:DESCRIPTION_MAX_CHARS])
    if approval.options:
        lines.append("Options: " + ", ".join(approval.options))
    status = approval.effective_status
    if status == ApprovalStatus.PENDING:
        lines.append(f"Expires: {_utc(approval.expires_at)}")
    elif status == ApprovalStatus.EXPIRED:
        lines.append("Expired without a decision.")
    else:
        outcome = f"{status.capitalize()} by {approval.decided_by}"
        if approval.decision_option is not None:
            outcome += f" (option: {approval.decision_option})"
        lines.append(outcome + ".")
    return "\n".join(lines)


def _telegram_markup(approval: Approval, token: str | None) -> dict[str, Any]:
    if token is None:
        return {"inline_keyboard": []}
    return {
        "inline_keyboard": [
            [{"text": label, "callback_data": f"{PREFIX}:{token}:{code}"}]
            for code, label in button_codes(approval)
        ]
    }


def _slack_blocks(approval: Approval, token: str | None) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = [
        {
            "type": "section",
            "text": {"type": "plain_text", "text": render_text(approval)[:3000], "emoji": False},
        }
    ]
    if token is not None:
        blocks.append(
            {
                "type": "actions",
                "block_id": "approval",
                "elements": [
                    {
                        "type": "button",
                        "action_id": f"approval_{code}",
                        "text": {"type": "plain_text", "text": label, "emoji": False},
                        "value": f"{PREFIX}:{token}:{code}",
                        **({"style": "danger"} if code == "r" else {"style": "primary"}),
                    }
                    for code, label in button_codes(approval)
                ],
            }
        )
    return blocks


def _discord_components(approval: Approval, token: str | None) -> list[dict[str, Any]]:
    if token is None:
        return []
    buttons = [
        {"type": 2, "style": 4 if code == "r" else 3, "label": label, "custom_id": f"{PREFIX}:{token}:{code}"}
        for code, label in button_codes(approval)
    ]
    return [{"type": 1, "components": buttons[i : i + 5]} for i in range(0, len(buttons), 5)]


# --- platform calls: post and edit ----------------------------------------------------------------


def _post(channel: Channel, approval: Approval, token: str | None) -> tuple[str, str]:
    """Post to the channel's default chat; (chat id, platform message id)."""
    config = channel.config
    adapter: Any = ADAPTERS[channel.platform]
    chat = adapter.default_chat(config)
    text = render_text(approval)
    if channel.platform == "telegram":
        body = adapter.call(
            str(config.get("bot_token") or ""),
            "sendMessage",
            {"chat_id": chat, "text": text, "reply_markup": _telegram_markup(approval, token)},
        )
        result = body.get("result") if isinstance(body.get("result"), dict) else {}
        return chat, str(result.get("message_id", ""))
    if channel.platform == "slack":
        body = adapter.call(
            str(config.get("bot_token") or ""),
            "chat.postMessage",
            {"channel": chat, "text": text[:3000], "blocks": _slack_blocks(approval, token)},
        )
        return str(body.get("channel") or chat), str(body.get("ts", ""))
    url = str(config.get("webhook_url") or "")
    result = platform_call(
        "POST",
        url,
        platform="discord",
        params={"wait": "true"},
        json={
            "content": text[:2000],
            "components": _discord_components(approval, token),
            "allowed_mentions": {"parse": []},
        },
    )
    if not result.ok:
        raise http_failure("discord", result)
    return "", str(json_body(result).get("id", ""))


def _edit(channel: Channel, post: ApprovalChatPost, approval: Approval) -> None:
    """Show the outcome in the posted message, buttons removed."""
    config = channel.config
    adapter: Any = ADAPTERS[channel.platform]
    text = render_text(approval)
    if channel.platform == "telegram":
        adapter.call(
            str(config.get("bot_token") or ""),
            "editMessageText",
            {
                "chat_id": post.chat_id,
                "message_id": int(post.platform_message_id),
                "text": text,
                "reply_markup": _telegram_markup(approval, None),
            },
        )
    elif channel.platform == "slack":
        adapter.call(
            str(config.get("bot_token") or ""),
            "chat.update",
            {
                "channel": post.chat_id,
                "ts": post.platform_message_id,
                "text": text[:3000],
                "blocks": _slack_blocks(approval, None),
            },
        )
    else:
        url = f"{str(config.get('webhook_url') or '').rstrip('/')}/messages/{post.platform_message_id}"
        result = platform_call(
            "PATCH", url, platform="discord", json={"content": text[:2000], "components": []}
        )
        if not result.ok:
            raise http_failure("discord", result)


# --- the background steps -----------------------------------------------------------------------


def approval_chat_channels(*, workspace_id: UUID) -> list[Channel]:
    return list(
        Channel.objects.filter(
            workspace_id=workspace_id,
            enabled=True,
            platform__in=CHAT_PLATFORMS,
            public_config__approvals=True,
        ).order_by("created_at", "id")
    )


def approval_post_to_chats(*, approval_id: UUID | str) -> int:
    """Post the approval to every channel of its workspace with `approvals: true`; idempotent
    (a channel already posted to is skipped). Returns how many posts were made; raises
    `PostNotSent` after trying every channel when one failed transiently."""
    approval = Approval.objects.filter(pk=approval_id).first()
    if approval is None:
        return 0
    posted, retry = 0, False
    for channel in approval_chat_channels(workspace_id=approval.workspace_id):
        token = secrets.token_urlsafe(18)
        post, created = ApprovalChatPost.objects.get_or_create(
            approval=approval, channel=channel, defaults={"token_hash": _hash(token)}
        )
        if not created:
            if post.platform_message_id:
                continue
            post.token_hash = _hash(token)  # the earlier token was never shown anywhere
        approval.refresh_from_db()
        pending = approval.effective_status == ApprovalStatus.PENDING
        try:
            post.chat_id, post.platform_message_id = _post(channel, approval, token if pending else None)
        except SendError as exc:
            post.error = exc.reason[:300]
            post.save(update_fields=["token_hash", "error", "updated_at"])
            retry = retry or exc.transient
            logger.warning("approval %s: not posted to channel %s: %s", approval.pk, channel.pk, exc.reason)
            continue
        post.shown_status, post.error = approval.effective_status, ""
        post.save(
            update_fields=[
                "token_hash",
                "chat_id",
                "platform_message_id",
                "shown_status",
                "error",
                "updated_at",
            ]
        )
        posted += 1
    if retry:
        raise PostNotSent(str(approval_id))
    return posted


def approval_refresh_chats(*, approval_id: UUID | str) -> int:
    """Edit every posted message of the approval whose shown outcome is out of date, once each
    (a conditional UPDATE claims the change, so concurrent refreshes edit it once)."""
    approval = Approval.objects.filter(pk=approval_id).first()
    if approval is None:
        return 0
    status = approval.effective_status
    edited = 0
    posts = (
        ApprovalChatPost.objects.select_related("channel")
        .filter(approval=approval)
        .exclude(Q(platform_message_id="") | Q(shown_status=status))
    )
    for post in posts:
        claimed = ApprovalChatPost.objects.filter(pk=post.pk, shown_status=post.shown_status).update(
            shown_status=status
        )
        if not claimed:
            continue
        try:
            _edit(post.channel, post, approval)
        except SendError as exc:
            ApprovalChatPost.objects.filter(pk=post.pk).update(error=exc.reason[:300])
            logger.warning("approval %s: chat message %s not edited: %s", approval.pk, post.pk, exc.reason)
            continue
        edited += 1
    return edited


def _publish(task: Any, approval_id: UUID | str) -> None:
    try:
        task.delay(str(approval_id))
    except (OSError, KombuError, CeleryError):
        logger.warning("approval %s: broker unavailable, chat update not queued", approval_id)


def enqueue_post(approval_id: UUID | str) -> None:
    from approvals.tasks import post_to_chats

    _publish(post_to_chats, approval_id)


def enqueue_refresh(approval_id: UUID | str) -> None:
    from approvals.tasks import refresh_chats

    _publish(refresh_chats, approval_id)


# --- a button press -----------------------------------------------------------------------------


def _answer(
    platform: str, event: InboundEvent, text: str, *, channel_id: UUID, alert: bool
) -> dict[str, Any]:
    """The private answer to the presser, as each platform takes it."""
    if platform == "telegram":
        return {
            "method": "answerCallbackQuery",
            "callback_query_id": str(event.meta.get("callback_query_id", "")),
            "text": text[:200],
            "show_alert": alert,
        }
    if platform == "discord":
        return {"type": 4, "data": {"content": text, "flags": 64}}
    # Slack ignores the body of an interactivity answer: an ephemeral message instead.
    from channels_app.services import channel_send_service

    channel_send_service(
        channel_id=channel_id,
        chat_id=event.chat_id,
        text=text,
        meta={"ephemeral_user": event.sender_id},
        service="approval",
    )
    return {}


def approval_chat_press(
    *, platform: str, channel_id: UUID, credential_key: str, event: InboundEvent
) -> dict[str, Any]:
    """Decide an approval from a verified button press; the body of the webhook's answer."""
    from approvals.services import AlreadyDecided, ApprovalExpired, approval_decide

    parts = event.text.split(":")
    same_bot = Q(channel_id=channel_id) | Q(
        channel__platform=platform, channel__credential_key=credential_key, channel__credential_key__gt=""
    )
    post = None
    if len(parts) == 3 and parts[0] == PREFIX and parts[1]:
        post = (
            ApprovalChatPost.objects.select_related("approval", "channel")
            .filter(same_bot, token_hash=_hash(parts[1]))
            .first()
        )
    if post is None:
        return _answer(platform, event, "This approval is not known here.", channel_id=channel_id, alert=True)
    approvers = post.channel.public_config.get("approvers") or []
    if not event.sender_id or event.sender_id not in approvers:
        return _answer(
            platform,
            event,
            "You are not allowed to decide this approval.",
            channel_id=post.channel_id,
            alert=True,
        )
    approval = post.approval
    choice = _decision_of(approval, parts[2])
    if choice is None:
        return _answer(platform, event, "This button is not valid.", channel_id=post.channel_id, alert=True)
    decision, option = choice
    actor = Principal(
        kind="workspace_token",
        name=f"{platform}:{event.sender_id}"[:200],
        workspace_id=approval.workspace_id,
        role="operator",
    )
    try:
        approval = approval_decide(approval=approval, decision=decision, actor=actor, option=option)
    except AlreadyDecided:
        approval.refresh_from_db()
        text = f"Already decided by {approval.decided_by} ({approval.status})."
        return _answer(platform, event, text, channel_id=post.channel_id, alert=True)
    except ApprovalExpired:
        enqueue_refresh(approval.pk)  # the sweep may not have marked it yet: show it now
        return _answer(platform, event, "This approval expired.", channel_id=post.channel_id, alert=True)
    return _answer(
        platform, event, f"{approval.status.capitalize()}.", channel_id=post.channel_id, alert=False
    )

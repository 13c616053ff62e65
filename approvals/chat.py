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
from datetime import UTC, timedelta
from typing import Any
from uuid import UUID

from django.conf import settings
from django.db.models import Case, DateTimeField, F, Q, Value, When
from django.utils import timezone

from access.principal import Principal
from approvals.models import Approval, ApprovalChatPost, ApprovalStatus
from channels_app.adapters import ADAPTERS
from channels_app.adapters.base import InboundEvent, SendError, http_failure, json_body, platform_call
from channels_app.models import Channel
from common.outbox import wake_on_commit

logger = logging.getLogger(__name__)

PREFIX = "ap"
CHAT_PLATFORMS = ("telegram", "slack", "discord")
DESCRIPTION_MAX_CHARS = 500
BUTTON_LABEL_MAX_CHARS = 70
# Transient failures of one step (the post, an edit) retried before the post is given up.
CHAT_POST_MAX_RETRIES = 5


class PostNotSent(Exception):
    """A transient failure while posting or editing: the task tries again after a backoff."""

    def __init__(self, tries: int) -> None:
        super().__init__(tries)
        self.tries = tries


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


def approval_chat_posts_create(*, approval: Approval) -> int:
    """In the caller's transaction: one due post row per channel of the workspace that takes
    approvals and has none yet (the INSERT wakes the relay); how many were created. The token
    stored now is never shown: the post's task replaces it with the one its buttons carry."""
    posted_to = set(ApprovalChatPost.objects.filter(approval=approval).values_list("channel_id", flat=True))
    rows = [
        ApprovalChatPost(approval=approval, channel=channel, token_hash=_hash(secrets.token_urlsafe(18)))
        for channel in approval_chat_channels(workspace_id=approval.workspace_id)
        if channel.pk not in posted_to
    ]
    if rows:  # a concurrent call may have created some meanwhile: those stay as they are
        ApprovalChatPost.objects.bulk_create(rows, ignore_conflicts=True)
    return len(rows)


def approval_chat_posts_due(approval_ids: list[UUID | str]) -> int:
    """The approvals changed (decided, expired): make their posts due so each message is edited
    to the outcome, and wake the relay after commit; how many posts.

    A post whose task is running (its lease ahead) or waiting for a retry keeps its time, moved
    by a microsecond: the running task's settle (conditional on the lease it set) then leaves the
    row due instead of finishing it, so a change it did not see is shown by the next attempt,
    and no second task runs beside it."""
    now = timezone.now()
    count = ApprovalChatPost.objects.filter(approval_id__in=approval_ids, failed_at__isnull=True).update(
        relay_due_at=Case(
            When(relay_due_at__gt=now, then=F("relay_due_at") + timedelta(microseconds=1)),
            default=Value(now),
            output_field=DateTimeField(),
        )
    )
    if count:
        wake_on_commit()
    return count


def _failed(post: ApprovalChatPost, exc: SendError, *, step: str) -> None:
    """Record a failed post or edit: raise `PostNotSent` while a transient failure has tries
    left (the task makes the row due after the backoff), else give the post up."""
    tries = post.tries + 1
    reason = exc.reason[:300]
    if exc.transient and tries <= CHAT_POST_MAX_RETRIES:
        ApprovalChatPost.objects.filter(pk=post.pk).update(
            error=reason, tries=tries, updated_at=timezone.now()
        )
        logger.info(
            "approval %s: %s on channel %s failed, retried: %s",
            post.approval_id,
            step,
            post.channel_id,
            reason,
        )
        raise PostNotSent(tries)
    now = timezone.now()
    ApprovalChatPost.objects.filter(pk=post.pk).update(
        error=reason, tries=tries, failed_at=now, updated_at=now
    )
    logger.warning(
        "approval %s: %s on channel %s given up: %s", post.approval_id, step, post.channel_id, reason
    )


def approval_chat_post_sync(*, post_id: int | str) -> None:
    """The body of one post's job: post the approval (with buttons while it is pending) if it
    is not posted yet, then edit the message while its shown outcome differs from the
    approval's. Raises `PostNotSent` (with the tries so far) after a transient failure; a
    permanent one, or the last try, is recorded on the row and ends the job."""
    post = ApprovalChatPost.objects.select_related("approval", "channel").filter(pk=post_id).first()
    if post is None:
        return
    approval, channel = post.approval, post.channel
    if not post.platform_message_id:
        config = channel.public_config or {}
        if not (channel.enabled and config.get("approvals") is True):
            return  # the channel stopped taking approvals before the post was made
        token = secrets.token_urlsafe(18)
        # Stored before the post is made: its buttons work as soon as anyone can see them.
        ApprovalChatPost.objects.filter(pk=post.pk).update(token_hash=_hash(token))
        status = approval.effective_status
        try:
            chat_id, message_id = _post(
                channel, approval, token if status == ApprovalStatus.PENDING else None
            )
        except SendError as exc:
            _failed(post, exc, step="post")
            return
        post.chat_id, post.platform_message_id, post.shown_status = chat_id, message_id, status
        post.error, post.tries = "", 0
        post.save(
            update_fields=["chat_id", "platform_message_id", "shown_status", "error", "tries", "updated_at"]
        )
    for _ in range(len(ApprovalStatus)):  # a status changes at most once after pending
        approval.refresh_from_db()
        status = approval.effective_status
        if post.shown_status == status:
            return
        # Claimed by a conditional UPDATE: however many runs, the change is shown once.
        claimed = ApprovalChatPost.objects.filter(pk=post.pk, shown_status=post.shown_status).update(
            shown_status=status
        )
        if not claimed:
            return
        try:
            _edit(channel, post, approval)
        except SendError as exc:
            ApprovalChatPost.objects.filter(pk=post.pk, shown_status=status).update(
                shown_status=post.shown_status
            )
            _failed(post, exc, step="edit")
            return
        post.shown_status = status
        if post.tries or post.error:
            post.error, post.tries = "", 0
            ApprovalChatPost.objects.filter(pk=post.pk).update(error="", tries=0)


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
        approval_chat_posts_due([approval.pk])  # the sweep may not have marked it yet: show it now
        return _answer(platform, event, "This approval expired.", channel_id=post.channel_id, alert=True)
    return _answer(
        platform, event, f"{approval.status.capitalize()}.", channel_id=post.channel_id, alert=False
    )

"""Upgrading to chat posts as outbox rows (approvals 0006): posts made before are not due (the
relay must not post or edit them again); posts created afterwards are."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from approvals.models import ApprovalChatPost
from tests.approvals.conftest import make_approval
from tests.channels_app.helpers import telegram_channel

BEFORE = [("approvals", "0005_outbox_fields")]
AFTER = [("approvals", "0006_chat_posts_outbox")]


def migrate(targets: list[tuple[str, str]]):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


@pytest.mark.django_db(transaction=True)
def test_posts_made_before_the_upgrade_are_not_due(workspace, settings):
    settings.PUBLIC_BASE_URL = ""
    channel = telegram_channel(workspace, chat_ids=["42"])
    approval = make_approval(workspace)  # no channel takes approvals: no post yet
    try:
        old_apps = migrate(BEFORE)
        OldPost = old_apps.get_model("approvals", "ApprovalChatPost")  # noqa: N806 - a model
        OldPost.objects.create(
            approval_id=approval.pk, channel_id=channel.pk, token_hash="h" * 64, platform_message_id="77"
        )
    finally:
        migrate(AFTER)
    post = ApprovalChatPost.objects.get()
    assert (post.relay_due_at, post.publish_attempt, post.tries, post.failed_at) == (None, 0, 0, None)
    telegram_channel(workspace, chat_ids=["43"], approvals=True)
    fresh = ApprovalChatPost.objects.get(approval=make_approval(workspace, action="after the upgrade"))
    assert fresh.relay_due_at is not None

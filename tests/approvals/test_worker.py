"""Through a real Celery worker: the agent hears about each decision and expiry exactly once."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from approvals import tasks
from approvals.models import Approval, ApprovalEvent
from tests.approvals.conftest import a2a_ok, make_approval
from tests.support.factories import bearer, make_admin_token, make_workspace, make_workspace_token
from tests.support.fake_http import FakeResponse
from tests.support.worker import run_worker, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def _messages_for(echo_agent, approval_id) -> list[dict]:
    return [
        m for m in list(echo_agent.received) if m.get("metadata", {}).get("approval_id") == str(approval_id)
    ]


def test_agent_receives_exactly_one_notification_per_decision(celery_worker, echo_agent):
    workspace = make_workspace("alpha", url=echo_agent.url)
    operator = APIClient()
    operator.credentials(**bearer(make_workspace_token(workspace, role="operator", name="ops")))
    admin = APIClient()
    admin.credentials(**bearer(make_admin_token("root")))
    first = make_approval(workspace, action="first", options=["x"])
    second = make_approval(workspace, action="second")

    base = f"/workspaces/{workspace.id}/approvals"
    ok = operator.post(f"{base}/{first.id}/decide", {"decision": "approve", "option": "x"}, format="json")
    assert ok.status_code == 200
    assert admin.post(f"{base}/{first.id}/decide", {"decision": "reject"}, format="json").status_code == 409
    ok = admin.post(f"{base}/{second.id}/decide", {"decision": "reject", "note": "no"}, format="json")
    assert ok.status_code == 200

    wait_for(lambda: len(echo_agent.received) >= 2, message="two notifications")
    wait_for(
        lambda: Approval.objects.filter(pk__in=[first.pk, second.pk], notified_at__isnull=False).count() == 2,
        message="notified_at stamped",
    )
    time.sleep(0.5)  # room for a wrongly duplicated notification to arrive
    assert len(echo_agent.received) == 2
    [to_first] = _messages_for(echo_agent, first.id)
    [to_second] = _messages_for(echo_agent, second.id)
    assert to_first["metadata"]["status"] == "approved" and to_first["metadata"]["option"] == "x"
    assert to_second["metadata"]["status"] == "rejected" and to_second["metadata"]["note"] == "no"
    assert ApprovalEvent.objects.filter(kind="notified").count() == 2


def test_sweep_expires_and_the_agent_is_notified_once(celery_worker, echo_agent):
    workspace = make_workspace("alpha", url=echo_agent.url)
    approval = make_approval(workspace)
    Approval.objects.filter(pk=approval.pk).update(expires_at=timezone.now() - timedelta(seconds=1))

    tasks.expire_due.delay()
    tasks.expire_due.delay()  # a second sweep must not notify again
    wait_for(lambda: _messages_for(echo_agent, approval.id), message="expiry notification")
    wait_for(lambda: Approval.objects.get(pk=approval.pk).notified_at, message="notified_at")
    time.sleep(0.5)
    assert len(_messages_for(echo_agent, approval.id)) == 1
    row = Approval.objects.get(pk=approval.pk)
    assert row.status == "expired" and row.decided_by is None
    kinds = list(ApprovalEvent.objects.filter(approval=approval).values_list("kind", flat=True))
    assert kinds == ["created", "expired", "notified"]


def test_worker_retries_a_transient_agent_failure(transactional_db, fake_http):
    replies = iter([503, 200])

    def flaky(request):
        if next(replies) == 503:
            return FakeResponse(503, b"")
        return a2a_ok(request)

    fake_http.route("POST", "/", flaky)
    # A 0.3 agent, said so: exactly one request per attempt (no card read, no 1.0 try).
    workspace = make_workspace("alpha", url=fake_http.url + "/", a2a_protocol="0.3")
    approval = make_approval(workspace)
    admin = APIClient()
    admin.credentials(**bearer(make_admin_token("root")))
    with run_worker(env={"APPROVAL_NOTIFY_RETRY_SECONDS": "0"}):
        response = admin.post(
            f"/workspaces/{workspace.id}/approvals/{approval.id}/decide",
            {"decision": "approve"},
            format="json",
        )
        assert response.status_code == 200
        wait_for(lambda: Approval.objects.get(pk=approval.pk).notified_at, message="notified after a retry")
    assert len(fake_http.requests) == 2
    message_ids = {r.json()["params"]["message"]["messageId"] for r in fake_http.requests}
    assert len(message_ids) == 1

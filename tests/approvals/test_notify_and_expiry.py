"""Telling the agent (A2A, once, retried on transient failure) and expiring by time."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.utils import timezone
from kombu.exceptions import OperationalError as KombuOperationalError
from rest_framework.test import APIClient

from approvals import services, tasks
from approvals.models import Approval, ApprovalEvent, ApprovalStatus
from tests.approvals.conftest import a2a_ok, make_approval
from tests.support.factories import bearer, make_admin_token, make_workspace
from tests.support.fake_http import FakeResponse
from tokens.principal import Principal
from workspaces.a2a import A2AError

pytestmark = pytest.mark.django_db

OPERATOR = Principal(kind="workspace_token", name="operator-1", role="operator")
AGENT = Principal(kind="workspace_token", name="agent-1", role="agent")


def _lapse(approval: Approval) -> None:
    Approval.objects.filter(pk=approval.pk).update(expires_at=timezone.now() - timedelta(seconds=1))


@pytest.fixture
def agent_workspace(workspace, echo_agent):
    workspace.url = echo_agent.url
    workspace.save(update_fields=["url"])
    return workspace


def test_service_refuses_agent_principal(workspace):
    approval = make_approval(workspace)
    with pytest.raises(services.AgentCannotDecide):
        services.approval_decide(approval=approval, decision="approve", actor=AGENT)


def test_decision_notifies_the_agent_once(agent_workspace, echo_agent):
    approval = make_approval(agent_workspace, options=["a", "b"])
    services.approval_decide(
        approval=approval, decision="approve", actor=OPERATOR, option="b", note="go ahead"
    )

    assert tasks.notify_agent.apply(args=[str(approval.id)]).get() == "sent"
    assert tasks.notify_agent.apply(args=[str(approval.id)]).get() == "skipped"

    assert len(echo_agent.received) == 1
    message = echo_agent.received[0]
    assert message["metadata"] == {
        "type": "approval.decision",
        "approval_id": str(approval.id),
        "status": "approved",
        "option": "b",
        "note": "go ahead",
        "decided_by": "operator-1",
        # SPEC §1: UTC timestamps end in Z, here as in every response.
        "decided_at": Approval.objects.get(pk=approval.pk).decided_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
    }
    assert message["metadata"]["decided_at"].endswith("Z")
    text = message["parts"][0]["text"]
    assert str(approval.id) in text and "approved" in text and "Option: b" in text and "go ahead" in text
    assert message["messageId"] == services.notification_message_id(Approval.objects.get(pk=approval.pk))

    row = Approval.objects.get(pk=approval.pk)
    assert row.notified_at is not None
    kinds = list(ApprovalEvent.objects.filter(approval=approval).values_list("kind", flat=True))
    assert kinds == ["created", "decided", "notified"]
    # The echo agent's card lists 1.0 first: `auto` spoke 1.0, and the audit trail says so.
    assert ApprovalEvent.objects.get(approval=approval, kind="notified").details["a2a_protocol"] == "1.0"
    assert echo_agent.versions == ["1.0"]


def test_pending_approval_is_never_notified(agent_workspace, echo_agent):
    approval = make_approval(agent_workspace)
    assert services.approval_notify(approval_id=approval.id) == "skipped"
    assert echo_agent.received == []


def test_transient_failure_releases_the_claim_and_retries_with_the_same_message_id(workspace, fake_http):
    calls: list[int] = []

    def flaky(request):
        calls.append(1)
        if len(calls) == 1:
            return FakeResponse(503, b"busy")
        return a2a_ok(request)

    fake_http.route("POST", "/", flaky)
    workspace.url = fake_http.url + "/"
    workspace.a2a_protocol = "0.3"  # a 0.3 agent, said so: exactly one request per attempt
    workspace.save(update_fields=["url", "a2a_protocol"])
    approval = make_approval(workspace)
    services.approval_decide(approval=approval, decision="reject", actor=OPERATOR)

    with pytest.raises(A2AError) as failure:
        services.approval_notify(approval_id=approval.id, final_attempt=False)
    assert failure.value.transient
    row = Approval.objects.get(pk=approval.pk)
    assert row.notify_claimed_at is None and row.notified_at is None

    assert services.approval_notify(approval_id=approval.id, final_attempt=False) == "sent"
    ids = {request.json()["params"]["message"]["messageId"] for request in fake_http.requests}
    assert len(fake_http.requests) == 2 and len(ids) == 1
    assert ApprovalEvent.objects.filter(approval=approval, kind="notified").count() == 1


def test_task_retries_transient_failures_then_succeeds(workspace, fake_http, settings):
    settings.APPROVAL_NOTIFY_RETRY_SECONDS = 0
    statuses = iter([503, 429, 200])

    def sequence(request):
        status = next(statuses)
        return a2a_ok(request) if status == 200 else FakeResponse(status, b"")

    fake_http.route("POST", "/", sequence)
    workspace.url = fake_http.url + "/"
    workspace.a2a_protocol = "0.3"  # a 0.3 agent, said so: exactly one request per attempt
    workspace.save(update_fields=["url", "a2a_protocol"])
    approval = make_approval(workspace)
    services.approval_decide(approval=approval, decision="approve", actor=OPERATOR)

    result = tasks.notify_agent.apply(args=[str(approval.id)])
    assert result.get() == "sent"
    assert len(fake_http.requests) == 3
    assert Approval.objects.get(pk=approval.pk).notified_at is not None


def test_transient_failure_on_the_final_attempt_is_recorded(workspace, fake_http):
    fake_http.route("POST", "/", lambda request: FakeResponse(503, b""))
    workspace.url = fake_http.url + "/"
    workspace.a2a_protocol = "0.3"  # a 0.3 agent, said so: exactly one request per attempt
    workspace.save(update_fields=["url", "a2a_protocol"])
    approval = make_approval(workspace)
    services.approval_decide(approval=approval, decision="approve", actor=OPERATOR)

    assert services.approval_notify(approval_id=approval.id, final_attempt=True) == "failed"
    row = Approval.objects.get(pk=approval.pk)
    assert row.notified_at is None and row.notify_error == "agent returned HTTP 503"
    event = ApprovalEvent.objects.get(approval=approval, kind="notify_failed")
    assert event.details == {"reason": "agent returned HTTP 503", "a2a_protocol": "0.3"}
    assert services.approval_notify(approval_id=approval.id) == "skipped", "a failure is not retried forever"


def test_permanent_failure_is_not_retried(workspace, settings):
    settings.APPROVAL_NOTIFY_RETRY_SECONDS = 0
    workspace.url = ""
    workspace.save(update_fields=["url"])
    approval = make_approval(workspace)
    services.approval_decide(approval=approval, decision="approve", actor=OPERATOR)

    assert tasks.notify_agent.apply(args=[str(approval.id)]).get() == "failed"
    assert Approval.objects.get(pk=approval.pk).notify_error == "workspace has no agent url"


def test_retry_delay_backs_off_and_is_capped(settings):
    settings.APPROVAL_NOTIFY_RETRY_SECONDS = 30
    assert [tasks.retry_delay(n) for n in range(6)] == [30, 60, 120, 240, 480, 600]


# --- expiry -------------------------------------------------------------------------------------------


def test_sweep_marks_only_lapsed_pending_approvals_expired(workspace, django_capture_on_commit_callbacks):
    lapsed = make_approval(workspace, action="lapsed")
    fresh = make_approval(workspace, action="fresh")
    approved = make_approval(workspace, action="approved")
    services.approval_decide(approval=approved, decision="approve", actor=OPERATOR)
    _lapse(lapsed)
    _lapse(approved)

    with django_capture_on_commit_callbacks() as callbacks:
        assert services.approval_expire_due() == 1
    assert len(callbacks) == 1, "one notification per expired approval"

    assert Approval.objects.get(pk=lapsed.pk).status == ApprovalStatus.EXPIRED
    assert Approval.objects.get(pk=fresh.pk).status == ApprovalStatus.PENDING
    assert Approval.objects.get(pk=approved.pk).status == ApprovalStatus.APPROVED
    row = Approval.objects.get(pk=lapsed.pk)
    assert row.decided_by is None and row.decided_at is None and row.decision_option is None
    assert ApprovalEvent.objects.filter(approval=lapsed, kind="expired").count() == 1
    assert services.approval_expire_due() == 0, "a second sweep finds nothing"


def test_expiry_never_approves(workspace):
    approval = make_approval(workspace)
    _lapse(approval)
    with pytest.raises(services.ApprovalExpired):
        services.approval_decide(approval=approval, decision="approve", actor=OPERATOR)
    services.approval_expire_due()
    with pytest.raises(services.ApprovalExpired):
        services.approval_decide(approval=approval, decision="approve", actor=OPERATOR)
    row = Approval.objects.get(pk=approval.pk)
    assert row.status == ApprovalStatus.EXPIRED
    assert not ApprovalEvent.objects.filter(approval=approval, kind="decided").exists()


def test_expiry_notification_tells_the_agent_once(agent_workspace, echo_agent):
    approval = make_approval(agent_workspace)
    _lapse(approval)
    tasks.expire_due.apply().get()
    assert tasks.notify_agent.apply(args=[str(approval.id)]).get() == "sent"
    assert tasks.notify_agent.apply(args=[str(approval.id)]).get() == "skipped"
    assert len(echo_agent.received) == 1
    message = echo_agent.received[0]
    assert message["metadata"]["status"] == "expired"
    assert message["metadata"]["option"] is None and message["metadata"]["decided_by"] is None
    assert "expired" in message["parts"][0]["text"] and "not approved" in message["parts"][0]["text"]
    assert "+00:00" not in message["parts"][0]["text"]


def test_sweep_is_scheduled_in_beat():
    entry = django_settings.CELERY_BEAT_SCHEDULE["approvals-expire-due"]
    assert entry["task"] == "approvals.expire_due"
    assert entry["schedule"] == float(django_settings.APPROVAL_SWEEP_SECONDS)


# --- broker outages ---------------------------------------------------------------------------------


def _broker_down(*args, **kwargs):
    raise KombuOperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")


@pytest.mark.django_db(transaction=True)
def test_decision_stands_when_the_broker_is_down(monkeypatch):
    # The on_commit publish used to raise after the commit: a 500 for a decision that had been
    # taken (a retry then got 409), and an agent that was never told.
    workspace = make_workspace("alpha")
    approval = make_approval(workspace)
    client = APIClient()
    client.credentials(**bearer(make_admin_token("root")))
    monkeypatch.setattr(tasks.notify_agent, "delay", _broker_down)
    response = client.post(
        f"/workspaces/{workspace.id}/approvals/{approval.id}/decide", {"decision": "approve"}, format="json"
    )
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "approved"
    row = Approval.objects.get(pk=approval.pk)
    assert row.status == ApprovalStatus.APPROVED and row.notified_at is None


def test_sweep_requeues_notifications_that_never_left(workspace, monkeypatch):
    published: list[str] = []
    monkeypatch.setattr(tasks.notify_agent, "delay", published.append)
    orphan = make_approval(workspace, action="orphan")
    services.approval_decide(approval=orphan, decision="approve", actor=OPERATOR)
    lapsed = make_approval(workspace, action="lapsed")
    _lapse(lapsed)
    services.approval_expire_due()
    told = make_approval(workspace, action="told")
    services.approval_decide(approval=told, decision="reject", actor=OPERATOR)
    Approval.objects.filter(pk=told.pk).update(notified_at=timezone.now())
    failed = make_approval(workspace, action="failed")
    services.approval_decide(approval=failed, decision="reject", actor=OPERATOR)
    Approval.objects.filter(pk=failed.pk).update(notify_error="agent answered 404")
    make_approval(workspace, action="still pending")

    window = timedelta(seconds=services.notification_window_seconds())
    assert window >= timedelta(hours=1), "covers every retry of the default backoff"
    now = timezone.now()
    # Within the window a retry may still be on its way: nothing is requeued.
    assert services.approval_requeue_unsent(now=now + window - timedelta(seconds=5)) == 0
    assert services.approval_requeue_unsent(now=now + window + timedelta(seconds=5)) == 2
    assert sorted(published) == sorted([str(orphan.id), str(lapsed.id)])

    # A task that is sending right now (fresh claim) is left alone.
    published.clear()
    Approval.objects.filter(pk=orphan.pk).update(notify_claimed_at=now + window)
    assert services.approval_requeue_unsent(now=now + window + timedelta(seconds=5)) == 1
    assert published == [str(lapsed.id)]


def test_requeue_counts_expired_approvals_from_their_sweep(workspace, monkeypatch):
    # Beat was down for a day: the approval lapsed long ago but was only just swept, so its
    # notify task (published by that sweep) may still be retrying; it is not an orphan yet.
    published: list[str] = []
    monkeypatch.setattr(tasks.notify_agent, "delay", published.append)
    approval = make_approval(workspace)
    Approval.objects.filter(pk=approval.pk).update(expires_at=timezone.now() - timedelta(days=1))
    services.approval_expire_due()
    assert services.approval_requeue_unsent() == 0
    later = timezone.now() + timedelta(seconds=services.notification_window_seconds() + 5)
    assert services.approval_requeue_unsent(now=later) == 1
    assert published == [str(approval.id)]


def test_requeue_stops_while_the_broker_is_still_down(workspace, monkeypatch):
    for index in range(3):
        approval = make_approval(workspace, action=f"a{index}")
        services.approval_decide(approval=approval, decision="approve", actor=OPERATOR)
    monkeypatch.setattr(tasks.notify_agent, "delay", _broker_down)
    later = timezone.now() + timedelta(seconds=services.notification_window_seconds() + 5)
    assert services.approval_requeue_unsent(now=later) == 0


def test_requeued_notification_is_sent_once(agent_workspace, echo_agent, monkeypatch):
    approval = make_approval(agent_workspace)
    monkeypatch.setattr(tasks.notify_agent, "delay", _broker_down)
    services.approval_decide(approval=approval, decision="approve", actor=OPERATOR)
    published: list[str] = []
    monkeypatch.setattr(tasks.notify_agent, "delay", published.append)
    later = timezone.now() + timedelta(seconds=services.notification_window_seconds() + 5)
    assert services.approval_requeue_unsent(now=later) == 1
    assert tasks.notify_agent.apply(args=published).get() == "sent"
    assert services.approval_requeue_unsent(now=later) == 0
    assert len(echo_agent.received) == 1

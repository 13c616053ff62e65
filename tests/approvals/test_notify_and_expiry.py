"""Telling the agent (A2A, once, retried on transient failure) and expiring by time."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.utils import timezone
from rest_framework.test import APIClient

from access.principal import Principal
from approvals import services, tasks
from approvals.models import Approval, ApprovalEvent, ApprovalStatus
from tests.approvals.conftest import a2a_ok, make_approval
from tests.support.factories import bearer, make_admin_token, make_workspace
from tests.support.fake_http import FakeResponse
from tests.support.worker import CLOSED_BROKER_URL, CaptureTasks, run_due_jobs
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

    assert run_due_jobs() == 1
    assert run_due_jobs() == 0
    tasks.notify_agent.apply(args=[str(approval.id), 1])  # a duplicate message of that attempt

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

    assert run_due_jobs() == 3  # each retry: the row due again after its (zero) backoff
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

    assert run_due_jobs() == 1
    assert Approval.objects.get(pk=approval.pk).notify_error == "workspace has no agent url"
    assert run_due_jobs() == 0


def test_retry_delay_backs_off_and_is_capped(settings):
    settings.APPROVAL_NOTIFY_RETRY_SECONDS = 30
    assert [tasks.retry_delay(n) for n in range(6)] == [30, 60, 120, 240, 480, 600]


# --- expiry -------------------------------------------------------------------------------------------


def test_sweep_marks_only_lapsed_pending_approvals_expired(workspace):
    lapsed = make_approval(workspace, action="lapsed")
    fresh = make_approval(workspace, action="fresh")
    approved = make_approval(workspace, action="approved")
    services.approval_decide(approval=approved, decision="approve", actor=OPERATOR)
    _lapse(lapsed)
    _lapse(approved)

    Approval.objects.filter(pk=approved.pk).update(relay_due_at=None)  # its notice was handled
    assert services.approval_expire_due() == 1
    due = Approval.objects.filter(relay_due_at__isnull=False).values_list("pk", flat=True)
    assert list(due) == [lapsed.pk], "one notice per expired approval"

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
    assert run_due_jobs() == 1
    assert run_due_jobs() == 0
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


@pytest.mark.django_db(transaction=True)
def test_decision_stands_when_the_broker_is_down_and_the_notice_leaves_once_it_is_back(broker, echo_agent):
    """The decision never touches the broker: 200 whatever its state. The relay, pointed at a
    dead broker, leaves the notice due; once the broker is back it publishes it, once."""
    from celery import current_app

    from common.outbox import BROKER_ERRORS, relay_pass

    workspace = make_workspace("alpha", url=echo_agent.url)
    approval = make_approval(workspace)
    client = APIClient()
    client.credentials(**bearer(make_admin_token("root")))
    response = client.post(
        f"/workspaces/{workspace.id}/approvals/{approval.id}/decide", {"decision": "approve"}, format="json"
    )
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "approved"
    with current_app.connection_for_write(url=CLOSED_BROKER_URL) as dead, pytest.raises(BROKER_ERRORS):
        relay_pass(producer=current_app.amqp.Producer(dead))
    row = Approval.objects.get(pk=approval.pk)
    assert (row.status, row.notified_at, row.publish_attempt) == (ApprovalStatus.APPROVED, None, 0)
    assert relay_pass() == 1
    assert relay_pass() == 0
    notices = [m for m in broker.messages() if m["headers"]["task"] == "approvals.notify_agent"]
    assert [(m["headers"]["task"], m["args"]) for m in notices] == [
        ("approvals.notify_agent", [str(approval.id), 1])
    ]


def test_a_notice_whose_worker_died_is_sent_again_after_the_lease(agent_workspace, echo_agent, settings):
    """Published, claimed, never finished (the worker was killed): once the lease is over the
    relay publishes it again and the agent is told once."""
    from approvals.models import NOTICE
    from common.outbox import outbox_claim, relay_pass

    approval = make_approval(agent_workspace)
    services.approval_decide(approval=approval, decision="approve", actor=OPERATOR)
    with CaptureTasks() as sent:
        assert relay_pass() == 1
    assert outbox_claim(kind=NOTICE, pk=approval.pk, attempt=1) is not None  # ...then the kill
    assert run_due_jobs() == 0  # within the lease
    Approval.objects.filter(pk=approval.pk).update(relay_due_at=timezone.now())  # the lease ends
    assert run_due_jobs() == 1
    assert len(echo_agent.received) == 1 and sent == [("approvals.notify_agent", [str(approval.id), 1])]
    assert Approval.objects.get(pk=approval.pk).notified_at is not None

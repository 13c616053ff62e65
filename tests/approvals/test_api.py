"""Approvals API (SPEC §9): create, validation edges, list, detail, decide, pending queue."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from approvals import services
from approvals.models import Approval, ApprovalEvent, ApprovalStatus
from tests.approvals.conftest import make_approval
from tests.support.factories import bearer, make_workspace, make_workspace_token

pytestmark = pytest.mark.django_db

FIELDS = {
    "id",
    "workspace_id",
    "action",
    "description",
    "metadata",
    "options",
    "status",
    "decision_option",
    "note",
    "decided_by",
    "decided_at",
    "expires_at",
    "created_at",
}


def url(workspace, suffix: str = "") -> str:
    return f"/workspaces/{workspace.id}/approvals{suffix}"


def client_with(token: str) -> APIClient:
    client = APIClient()
    client.credentials(**bearer(token))
    return client


# --- create -----------------------------------------------------------------------------------------


def test_agent_creates_a_pending_approval(as_agent, workspace):
    before = timezone.now()
    response = as_agent.post(
        url(workspace),
        {
            "action": "delete the staging database",
            "description": "Nightly cleanup wants to drop it.",
            "metadata": {"db": "staging", "size_gb": 12, "nested": {"a": [1, 2]}},
            "options": ["drop", "archive"],
            "expires_in_seconds": 600,
        },
        format="json",
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert set(body) == FIELDS
    assert body["status"] == "pending"
    assert body["workspace_id"] == str(workspace.id)
    assert body["metadata"] == {"db": "staging", "size_gb": 12, "nested": {"a": [1, 2]}}
    assert body["options"] == ["drop", "archive"]
    assert body["decided_by"] is None and body["decided_at"] is None and body["decision_option"] is None
    assert body["created_at"].endswith("Z") and body["expires_at"].endswith("Z")
    approval = Approval.objects.get(pk=body["id"])
    assert before + timedelta(seconds=599) < approval.expires_at <= timezone.now() + timedelta(seconds=600)
    events = list(ApprovalEvent.objects.filter(approval=approval).values_list("kind", "actor"))
    assert events == [("created", "agent-1")]
    created = ApprovalEvent.objects.get(approval=approval)
    assert created.details == {"expires_at": body["expires_at"]}, "the trail shows times like the API (Z)"


def test_create_defaults(as_agent, workspace):
    response = as_agent.post(url(workspace), {"action": "x"}, format="json")
    assert response.status_code == 201
    body = response.json()
    assert body["description"] == "" and body["metadata"] == {} and body["options"] == []
    approval = Approval.objects.get(pk=body["id"])
    assert approval.expires_at - approval.created_at == timedelta(seconds=3600)


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({}, "action"),
        ({"action": ""}, "action"),
        ({"action": "a" * 501}, "action"),
        ({"action": "x", "expires_in_seconds": 0}, "expires_in_seconds"),
        ({"action": "x", "expires_in_seconds": 2_592_001}, "expires_in_seconds"),
        ({"action": "x", "expires_in_seconds": -5}, "expires_in_seconds"),
        ({"action": "x", "expires_in_seconds": "soon"}, "expires_in_seconds"),
        ({"action": "x", "metadata": ["not", "an", "object"]}, "metadata"),
        ({"action": "x", "options": "yes"}, "options"),
        ({"action": "x", "options": ["a", "a"]}, "options"),
        ({"action": "x", "options": [str(i) for i in range(21)]}, "options"),
        ({"action": "x", "description": "d" * 10_001}, "description"),
        ({"action": 5}, "action"),
        ({"action": True}, "action"),
        ({"action": "x", "options": [1, 2]}, "options"),
        ({"action": "x", "options": ["a" * 201]}, "options"),
        ({"action": "x", "description": 12}, "description"),
    ],
)
def test_create_validation(as_agent, workspace, payload, field):
    response = as_agent.post(url(workspace), payload, format="json")
    assert response.status_code == 400, response.json()
    body = response.json()
    assert body["code"] == "invalid_request"
    assert field in body["details"]
    assert not Approval.objects.exists()


@pytest.mark.parametrize(
    "metadata",
    [{"k": "v\x00"}, {"k\x00": 1}, {"k": [{"deep": ["\x00"]}]}],
)
def test_metadata_with_nul_is_refused(as_agent, workspace, metadata):
    """PostgreSQL jsonb refuses NUL characters (these were 500s); the API parser refuses them."""
    response = as_agent.post(url(workspace), {"action": "x", "metadata": metadata}, format="json")
    assert response.status_code == 400, response.json()
    assert response.json()["code"] == "invalid_request"
    assert not Approval.objects.exists()


@pytest.mark.parametrize("seconds", [1, 2_592_000])
def test_expires_in_seconds_edges_accepted(as_agent, workspace, seconds):
    response = as_agent.post(url(workspace), {"action": "x", "expires_in_seconds": seconds}, format="json")
    assert response.status_code == 201, response.json()
    approval = Approval.objects.get(pk=response.json()["id"])
    assert approval.expires_at - approval.created_at == timedelta(seconds=seconds)


def nested(depth: int) -> dict:
    """An object `depth` levels deep (1 is a flat object)."""
    value: dict = {"leaf": 1}
    for _ in range(depth - 1):
        value = {"k": value}
    return value


def test_metadata_nesting_limit(as_agent, workspace):
    # Deeper values overflowed Python's recursion limit when encoded for the database (a 500).
    accepted = as_agent.post(url(workspace), {"action": "x", "metadata": nested(64)}, format="json")
    assert accepted.status_code == 201, accepted.json()
    assert accepted.json()["metadata"] == nested(64)
    refused = as_agent.post(url(workspace), {"action": "x", "metadata": nested(65)}, format="json")
    assert refused.status_code == 400
    assert refused.json()["code"] == "invalid_request"
    assert refused.json()["details"]["metadata"] == ["Nesting deeper than 64 levels is not allowed."]
    too_deep = as_agent.post(url(workspace), {"action": "x", "metadata": nested(900)}, format="json")
    assert too_deep.status_code == 400
    assert Approval.objects.count() == 1


def test_limits_of_options_and_description_at_their_edges(as_agent, workspace):
    body = {
        "action": "x",
        "options": [f"{index}".ljust(200, "o") for index in range(20)],
        "description": "d" * 10_000,
    }
    response = as_agent.post(url(workspace), body, format="json")
    assert response.status_code == 201, response.json()
    assert len(response.json()["options"]) == 20


def test_action_of_500_chars_is_accepted(as_agent, workspace):
    response = as_agent.post(url(workspace), {"action": "a" * 500}, format="json")
    assert response.status_code == 201
    assert response.json()["action"] == "a" * 500


@pytest.mark.parametrize("field", ["id", "status", "workspace_id", "decided_by", "created_at", "colour"])
def test_create_rejects_unknown_and_read_only_fields(as_agent, workspace, field):
    response = as_agent.post(url(workspace), {"action": "x", field: "sneaky"}, format="json")
    assert response.status_code == 400
    assert response.json()["code"] == "unknown_field"
    assert field in response.json()["details"]


def test_create_body_over_one_mib_is_refused(as_agent, workspace):
    response = as_agent.post(
        url(workspace), {"action": "x", "metadata": {"blob": "a" * (1024 * 1024)}}, format="json"
    )
    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"


# --- list and detail ----------------------------------------------------------------------------------


def test_list_newest_first_and_status_filter_uses_effective_status(as_agent, workspace):
    old = make_approval(workspace, action="old")
    decided = make_approval(workspace, action="decided")
    lapsed = make_approval(workspace, action="lapsed")
    fresh = make_approval(workspace, action="fresh")
    Approval.objects.filter(pk=lapsed.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    Approval.objects.filter(pk=decided.pk).update(status=ApprovalStatus.REJECTED)

    listed = as_agent.get(url(workspace)).json()
    assert [a["action"] for a in listed] == ["fresh", "lapsed", "decided", "old"]
    assert {a["action"]: a["status"] for a in listed}["lapsed"] == "expired"

    def actions(status):
        response = as_agent.get(url(workspace), {"status": status})
        assert response.status_code == 200
        return [a["action"] for a in response.json()]

    assert actions("pending") == [fresh.action, old.action]
    assert actions("expired") == ["lapsed"]
    assert actions("rejected") == ["decided"]
    assert actions("approved") == []


def test_list_bad_status_is_invalid_parameter(as_agent, workspace):
    response = as_agent.get(url(workspace), {"status": "maybe"})
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_parameter"


def test_list_paginates_with_link_header(as_agent, workspace):
    for index in range(3):
        make_approval(workspace, action=f"a{index}")
    first = as_agent.get(url(workspace), {"limit": 2})
    assert [a["action"] for a in first.json()] == ["a2", "a1"]
    next_url = first["Link"].split(";")[0].strip("<>")
    second = as_agent.get(next_url)
    assert [a["action"] for a in second.json()] == ["a0"]
    assert "Link" not in second


def test_list_query_count_is_constant(as_agent, workspace, django_assert_num_queries):
    make_approval(workspace)
    # auth lookup + last_used_at touch happen on the first request only; warm up first.
    as_agent.get(url(workspace))
    with django_assert_num_queries(3):  # token, workspace, approvals page
        assert len(as_agent.get(url(workspace)).json()) == 1
    for index in range(10):
        make_approval(workspace, action=f"more {index}")
    with django_assert_num_queries(3):
        assert len(as_agent.get(url(workspace)).json()) == 11


def test_detail_for_polling_agents(as_agent, workspace, approval):
    response = as_agent.get(url(workspace, f"/{approval.id}"))
    assert response.status_code == 200
    assert response.json()["id"] == str(approval.id)
    assert response.json()["metadata"] == {"service": "api", "replicas": 3}


def test_detail_reads_expired_before_any_sweep(as_agent, workspace, approval):
    Approval.objects.filter(pk=approval.pk).update(expires_at=timezone.now() - timedelta(milliseconds=1))
    body = as_agent.get(url(workspace, f"/{approval.id}")).json()
    assert body["status"] == "expired"
    assert Approval.objects.get(pk=approval.pk).status == "pending", "a read must not write"


def test_cross_workspace_access_is_404(as_admin, workspace, other_workspace):
    foreign = make_approval(other_workspace)
    assert as_admin.get(url(workspace, f"/{foreign.id}")).status_code == 404
    response = as_admin.post(url(workspace, f"/{foreign.id}/decide"), {"decision": "approve"}, format="json")
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"
    assert Approval.objects.get(pk=foreign.pk).status == "pending"
    assert [a["id"] for a in as_admin.get(url(workspace)).json()] == []


def test_unknown_approval_and_malformed_id_are_404(as_agent, workspace):
    assert as_agent.get(url(workspace, "/00000000-0000-0000-0000-000000000000")).status_code == 404
    assert as_agent.get(url(workspace, "/not-a-uuid")).status_code == 404


def test_other_workspace_token_is_403(api, workspace, other_workspace, approval):
    api.credentials(**bearer(make_workspace_token(other_workspace, role="operator")))
    assert api.get(url(workspace, f"/{approval.id}")).status_code == 403
    response = api.post(url(workspace, f"/{approval.id}/decide"), {"decision": "approve"}, format="json")
    assert response.status_code == 403
    assert response.json()["code"] == "forbidden"


def test_no_credentials_is_401(api, workspace, approval):
    assert api.get(url(workspace)).status_code == 401
    assert api.post(url(workspace, f"/{approval.id}/decide"), {"decision": "approve"}).status_code == 401


def test_trailing_slash_variants(as_agent, workspace, approval):
    assert as_agent.get(url(workspace, "/")).status_code == 200
    assert as_agent.get(url(workspace, f"/{approval.id}/")).status_code == 200
    assert as_agent.post(url(workspace, "/"), {"action": "x"}, format="json").status_code == 201


# --- decide -----------------------------------------------------------------------------------------


def test_agent_token_cannot_approve_itself(as_agent, workspace, approval):
    response = as_agent.post(url(workspace, f"/{approval.id}/decide"), {"decision": "approve"}, format="json")
    assert response.status_code == 403
    assert response.json()["code"] == "forbidden"
    assert Approval.objects.get(pk=approval.pk).status == "pending"
    assert not ApprovalEvent.objects.filter(approval=approval, kind="decided").exists()


def test_operator_token_decides_and_decided_by_is_the_token_name(workspace, operator_token, approval):
    client = client_with(operator_token)
    response = client.post(
        url(workspace, f"/{approval.id}/decide"),
        {"decision": "approve", "option": "tonight", "note": "after 22:00, signed: the CEO"},
        format="json",
    )
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["status"] == "approved"
    assert body["decision_option"] == "tonight"
    assert body["note"] == "after 22:00, signed: the CEO"
    assert body["decided_by"] == "operator-1"
    assert body["decided_at"].endswith("Z")
    event = ApprovalEvent.objects.get(approval=approval, kind="decided")
    assert event.actor == "operator-1"
    assert event.details == {"status": "approved", "option": "tonight"}


def test_admin_token_rejects_and_decided_by_is_the_admin_token_name(as_admin, workspace, approval):
    response = as_admin.post(url(workspace, f"/{approval.id}/decide"), {"decision": "reject"}, format="json")
    assert response.status_code == 200
    assert response.json()["status"] == "rejected"
    assert response.json()["decided_by"] == "root"
    assert response.json()["decision_option"] is None


def test_env_admin_token_is_recorded_as_ADMIN_TOKEN(api, settings, workspace, approval):
    settings.ADMIN_TOKEN = "e" * 40
    api.credentials(**bearer("e" * 40))
    response = api.post(url(workspace, f"/{approval.id}/decide"), {"decision": "approve"}, format="json")
    assert response.status_code == 200
    assert response.json()["decided_by"] == "ADMIN_TOKEN"


def test_staff_session_decided_by_is_the_username(api, workspace, approval, django_user_model):
    user = django_user_model.objects.create_user("olivia", password="pw", is_staff=True, is_superuser=True)
    api.force_login(user)
    response = api.post(url(workspace, f"/{approval.id}/decide"), {"decision": "approve"}, format="json")
    assert response.status_code == 200
    assert response.json()["decided_by"] == "olivia"


def test_client_cannot_choose_decided_by(workspace, operator_token, approval):
    client = client_with(operator_token)
    response = client.post(
        url(workspace, f"/{approval.id}/decide"),
        {"decision": "approve", "decided_by": "the-ceo"},
        format="json",
    )
    assert response.status_code == 400
    assert response.json()["code"] == "unknown_field"
    assert Approval.objects.get(pk=approval.pk).status == "pending"
    response = client.post(url(workspace, f"/{approval.id}/decide"), {"decision": "approve"}, format="json")
    assert response.json()["decided_by"] == "operator-1"


def test_option_must_be_one_of_options(as_admin, workspace, approval):
    response = as_admin.post(
        url(workspace, f"/{approval.id}/decide"), {"decision": "approve", "option": "tomorrow"}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_request"
    assert "option" in response.json()["details"]
    assert Approval.objects.get(pk=approval.pk).status == "pending"


def test_option_without_offered_options_is_400(as_admin, workspace):
    plain = make_approval(workspace)
    response = as_admin.post(
        url(workspace, f"/{plain.id}/decide"), {"decision": "approve", "option": "anything"}, format="json"
    )
    assert response.status_code == 400
    assert "option" in response.json()["details"]


@pytest.mark.parametrize(
    ("payload", "code", "field"),
    [
        ({}, "invalid_request", "decision"),
        ({"decision": "maybe"}, "invalid_request", "decision"),
        ({"decision": "approve", "note": "n" * 2001}, "invalid_request", "note"),
        ({"decision": "approve", "note": 7}, "invalid_request", "note"),
        ({"decision": "approve", "option": 1}, "invalid_request", "option"),
        ({"decision": "approve", "status": "approved"}, "unknown_field", "status"),
    ],
)
def test_decide_validation(as_admin, workspace, approval, payload, code, field):
    response = as_admin.post(url(workspace, f"/{approval.id}/decide"), payload, format="json")
    assert response.status_code == 400
    assert response.json()["code"] == code
    assert field in response.json()["details"]


def test_note_of_2000_chars_is_accepted(as_admin, workspace, approval):
    response = as_admin.post(
        url(workspace, f"/{approval.id}/decide"), {"decision": "reject", "note": "n" * 2000}, format="json"
    )
    assert response.status_code == 200


def test_second_decision_is_already_decided(as_admin, workspace, approval):
    first = as_admin.post(url(workspace, f"/{approval.id}/decide"), {"decision": "approve"}, format="json")
    assert first.status_code == 200
    second = as_admin.post(url(workspace, f"/{approval.id}/decide"), {"decision": "reject"}, format="json")
    assert second.status_code == 409
    assert second.json()["code"] == "already_decided"
    assert Approval.objects.get(pk=approval.pk).status == "approved"
    assert ApprovalEvent.objects.filter(approval=approval, kind="decided").count() == 1


def test_deciding_after_expires_at_is_expired_before_any_sweep(as_admin, workspace, approval):
    Approval.objects.filter(pk=approval.pk).update(expires_at=timezone.now() - timedelta(milliseconds=1))
    for decision in ("approve", "reject"):
        response = as_admin.post(
            url(workspace, f"/{approval.id}/decide"), {"decision": decision}, format="json"
        )
        assert response.status_code == 409
        assert response.json()["code"] == "expired"
    row = Approval.objects.get(pk=approval.pk)
    assert row.status == "pending" and row.decided_by is None


def test_deciding_a_swept_approval_is_expired(as_admin, workspace, approval):
    Approval.objects.filter(pk=approval.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert services.approval_expire_due() == 1
    response = as_admin.post(url(workspace, f"/{approval.id}/decide"), {"decision": "approve"}, format="json")
    assert response.status_code == 409
    assert response.json()["code"] == "expired"


def test_decide_publishes_one_notification(as_admin, workspace, approval):
    from common.outbox import relay_pass
    from tests.support.worker import CaptureTasks

    with CaptureTasks() as sent:
        assert relay_pass() == 0  # pending: nothing to tell yet
        as_admin.post(url(workspace, f"/{approval.id}/decide"), {"decision": "approve"}, format="json")
        as_admin.post(url(workspace, f"/{approval.id}/decide"), {"decision": "approve"}, format="json")
        assert relay_pass() == 1
        assert relay_pass() == 0
    assert sent == [("approvals.notify_agent", [str(approval.id), 1])]


# --- pending queue (admin) ------------------------------------------------------------------------------


def test_pending_is_admin_only(api, workspace, agent_token, operator_token):
    assert api.get("/approvals/pending").status_code == 401
    for token in (agent_token, operator_token):
        response = client_with(token).get("/approvals/pending")
        assert response.status_code == 403
        assert response.json()["code"] == "forbidden"


def test_pending_lists_every_workspace_oldest_first_with_workspace_name(as_admin, workspace, other_workspace):
    first = make_approval(workspace, action="first")
    second = make_approval(other_workspace, action="second")
    third = make_approval(workspace, action="third")
    decided = make_approval(workspace, action="decided")
    lapsed = make_approval(other_workspace, action="lapsed")
    Approval.objects.filter(pk=decided.pk).update(status=ApprovalStatus.APPROVED)
    Approval.objects.filter(pk=lapsed.pk).update(expires_at=timezone.now() - timedelta(seconds=1))

    response = as_admin.get("/approvals/pending/")
    assert response.status_code == 200
    body = response.json()
    assert [a["id"] for a in body] == [str(first.id), str(second.id), str(third.id)]
    assert [a["workspace_name"] for a in body] == ["alpha", "beta", "alpha"]
    assert set(body[0]) == FIELDS | {"workspace_name"}
    assert all(a["status"] == "pending" for a in body)

    page = as_admin.get("/approvals/pending", {"limit": 2})
    assert [a["id"] for a in page.json()] == [str(first.id), str(second.id)]
    assert "Link" in page


def test_pending_query_count_is_constant(as_admin, django_assert_num_queries):
    as_admin.get("/approvals/pending")  # warm the token's last_used_at
    for index in range(2):
        make_approval(make_workspace(f"ws{index}"))
    with django_assert_num_queries(2):  # token, approvals joined with workspaces
        assert len(as_admin.get("/approvals/pending").json()) == 2
    for index in range(10):
        make_approval(make_workspace(f"more{index}"))
    with django_assert_num_queries(2):
        assert len(as_admin.get("/approvals/pending").json()) == 12

"""Admin console: the operators' queue, read-only requests, decisions through the same service."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.utils import timezone

from access.principal import Principal
from approvals.models import Approval, ApprovalEvent, ApprovalStatus
from tests.approvals.conftest import make_approval

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/approvals/approval/"
OPERATOR = Principal(kind="workspace_token", name="operator-1", role="operator")


@pytest.fixture
def superuser(django_user_model):
    return django_user_model.objects.create_superuser("olivia", "olivia@example.com", "pw")


@pytest.fixture
def console(client, superuser):
    client.force_login(superuser)
    return client


def change_url(approval: Approval) -> str:
    return f"{CHANGELIST}{approval.id}/change/"


def decide_url(approval: Approval) -> str:
    return f"{CHANGELIST}{approval.id}/decide/"


def row_ids(html: str) -> list[str]:
    return re.findall(r'name="_selected_action" value="([0-9a-f-]{36})"', html)


def messages_of(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def test_changelist_puts_pending_first(console, workspace, other_workspace):
    old_pending = make_approval(workspace, action="old pending")
    decided = make_approval(workspace, action="decided")
    lapsed = make_approval(other_workspace, action="lapsed")
    new_pending = make_approval(other_workspace, action="new pending")
    Approval.objects.filter(pk=decided.pk).update(status=ApprovalStatus.APPROVED, decided_by="x")
    Approval.objects.filter(pk=lapsed.pk).update(expires_at=timezone.now() - timedelta(seconds=1))

    response = console.get(CHANGELIST)
    assert response.status_code == 200
    ids = row_ids(response.content.decode())
    assert set(ids[:2]) == {str(old_pending.id), str(new_pending.id)}
    assert set(ids[2:]) == {str(decided.id), str(lapsed.id)}
    html = response.content.decode()
    assert 'data-status="expired"' in html and 'data-status="approved"' in html


def test_changelist_filters_and_search(console, workspace, other_workspace):
    mine = make_approval(workspace, action="rotate the keys")
    theirs = make_approval(other_workspace, action="delete the bucket")
    lapsed = make_approval(workspace, action="lapsed")
    Approval.objects.filter(pk=lapsed.pk).update(expires_at=timezone.now() - timedelta(seconds=1))

    assert set(row_ids(console.get(CHANGELIST, {"status": "pending"}).content.decode())) == {
        str(mine.id),
        str(theirs.id),
    }
    assert row_ids(console.get(CHANGELIST, {"status": "expired"}).content.decode()) == [str(lapsed.id)]
    by_workspace = console.get(CHANGELIST, {"workspace__id__exact": str(other_workspace.id)})
    assert row_ids(by_workspace.content.decode()) == [str(theirs.id)]
    assert row_ids(console.get(CHANGELIST, {"q": "bucket"}).content.decode()) == [str(theirs.id)]
    assert row_ids(console.get(CHANGELIST, {"q": "beta"}).content.decode()) == [str(theirs.id)]


def test_changelist_query_count_is_constant(console, workspace, django_assert_max_num_queries):
    make_approval(workspace)
    console.get(CHANGELIST)
    for index in range(20):
        make_approval(workspace, action=f"n{index}")
    with django_assert_max_num_queries(12):
        assert console.get(CHANGELIST).status_code == 200


def test_detail_is_read_only_with_pretty_metadata_and_decision_buttons(console, approval):
    response = console.get(change_url(approval))
    assert response.status_code == 200
    html = response.content.decode()
    assert '<pre class="approval-metadata"' in html
    assert "{\n  &quot;replicas&quot;: 3,\n  &quot;service&quot;: &quot;api&quot;\n}" in html
    assert 'name="_save"' not in html, "requests are not editable"
    assert 'id="approve-button"' in html and 'id="reject-button"' in html
    assert '<option value="tonight">' in html
    assert "audit trail" in html.lower()


def test_detail_of_a_decided_approval_has_no_buttons(console, approval):
    Approval.objects.filter(pk=approval.pk).update(status=ApprovalStatus.REJECTED, decided_by="bob")
    html = console.get(change_url(approval)).content.decode()
    assert 'id="approve-button"' not in html
    assert "cannot be decided again" in html


def test_detail_button_approves_through_the_service(console, approval):
    response = console.post(
        decide_url(approval), {"decision": "approve", "option": "now", "note": "ship it"}, follow=True
    )
    assert response.status_code == 200
    assert any("approved" in message for message in messages_of(response))
    row = Approval.objects.get(pk=approval.pk)
    assert (row.status, row.decision_option, row.note, row.decided_by) == (
        "approved",
        "now",
        "ship it",
        "olivia",
    )
    assert ApprovalEvent.objects.get(approval=approval, kind="decided").actor == "olivia"


def test_detail_button_refuses_a_second_decision_clearly(console, approval):
    from approvals import services

    services.approval_decide(approval=approval, decision="reject", actor=OPERATOR)
    response = console.post(decide_url(approval), {"decision": "approve"}, follow=True)
    assert messages_of(response) == [
        '"deploy to production" was already rejected by operator-1; a second decision is refused.'
    ]
    assert Approval.objects.get(pk=approval.pk).status == "rejected"


def test_detail_button_refuses_an_expired_approval(console, approval):
    Approval.objects.filter(pk=approval.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    response = console.post(decide_url(approval), {"decision": "approve"}, follow=True)
    assert messages_of(response) == ['"deploy to production" has expired and can no longer be decided.']
    assert Approval.objects.get(pk=approval.pk).status == "pending"


def test_detail_button_validates_the_option(console, approval):
    response = console.post(decide_url(approval), {"decision": "approve", "option": "never"}, follow=True)
    assert "option must be one of" in messages_of(response)[0]
    assert Approval.objects.get(pk=approval.pk).status == "pending"


def test_decide_view_needs_post(console, approval):
    assert console.get(decide_url(approval)).status_code == 405


def test_list_actions_decide_pending_and_refuse_the_rest(console, workspace):
    pending = make_approval(workspace, action="pending one")
    decided = make_approval(workspace, action="decided one")
    lapsed = make_approval(workspace, action="lapsed one")
    Approval.objects.filter(pk=decided.pk).update(status=ApprovalStatus.APPROVED, decided_by="bob")
    Approval.objects.filter(pk=lapsed.pk).update(expires_at=timezone.now() - timedelta(seconds=1))

    response = console.post(
        CHANGELIST,
        {"action": "reject_selected", "_selected_action": [str(pending.id), str(decided.id), str(lapsed.id)]},
        follow=True,
    )
    assert sorted(messages_of(response)) == sorted(
        [
            "Rejected 1 approval(s).",
            '"decided one" was already approved by bob; a second decision is refused.',
            '"lapsed one" has expired and can no longer be decided.',
        ]
    )
    assert Approval.objects.get(pk=pending.pk).status == "rejected"
    assert Approval.objects.get(pk=pending.pk).decided_by == "olivia"
    assert Approval.objects.get(pk=decided.pk).status == "approved"
    assert Approval.objects.get(pk=lapsed.pk).status == "pending"


def test_staff_without_the_decide_permission_cannot_decide(client, django_user_model, approval):
    viewer = django_user_model.objects.create_user("vic", password="pw", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_approval"))
    client.force_login(viewer)
    html = client.get(change_url(approval)).content.decode()
    assert 'id="approve-button"' not in html
    assert "approve_selected" not in client.get(CHANGELIST).content.decode()
    response = client.post(decide_url(approval), {"decision": "approve"}, follow=True)
    assert messages_of(response) == ["You do not have permission to decide approvals."]
    assert Approval.objects.get(pk=approval.pk).status == "pending"


def test_console_cannot_add_edit_or_delete_approvals(console, approval):
    assert console.get(f"{CHANGELIST}add/").status_code == 403
    assert console.get(f"{CHANGELIST}{approval.id}/delete/").status_code == 403
    console.post(change_url(approval), {"action": "changed"})
    assert Approval.objects.get(pk=approval.pk).action == "deploy to production"


def test_audit_trail_admin_lists_events(console, approval):
    response = console.get("/admin/approvals/approvalevent/")
    assert response.status_code == 200
    assert "deploy to production" in response.content.decode()
    event = ApprovalEvent.objects.get(approval=approval)
    assert console.get(f"/admin/approvals/approvalevent/{event.id}/change/").status_code == 200


def test_admin_index_shows_the_pending_count(console, workspace):
    for index in range(3):
        make_approval(workspace, action=f"a{index}")
    lapsed = make_approval(workspace, action="lapsed")
    Approval.objects.filter(pk=lapsed.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    html = console.get("/admin/").content.decode()
    assert 'id="pending-approvals"' in html
    assert '<strong data-count="3">3</strong> pending approvals' in html
    assert "/admin/approvals/approval/?status=pending" in html
    assert "Workspaces" in html, "the usual app list is still there"


def test_admin_index_hides_the_count_from_staff_without_access(client, django_user_model):
    user = django_user_model.objects.create_user("sam", password="pw", is_staff=True)
    client.force_login(user)
    html = client.get("/admin/").content.decode()
    assert 'id="pending-approvals"' not in html


def test_deleting_a_workspace_in_the_console_removes_its_approvals(console, workspace, approval):
    response = console.get(f"/admin/workspaces/workspace/{workspace.id}/delete/")
    assert response.status_code == 200
    assert "permission to delete" not in response.content.decode()
    response = console.post(f"/admin/workspaces/workspace/{workspace.id}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not Approval.objects.exists()
    assert not ApprovalEvent.objects.exists()


def test_detail_button_refuses_an_overlong_note(console, approval):
    response = console.post(decide_url(approval), {"decision": "approve", "note": "n" * 2001}, follow=True)
    assert messages_of(response) == ['"deploy to production": note must be at most 2000 characters.']
    assert Approval.objects.get(pk=approval.pk).status == "pending"


def test_detail_button_refuses_a_note_with_a_null_character(console, approval):
    # PostgreSQL text cannot store NUL; this was a 500 from the console.
    response = console.post(decide_url(approval), {"decision": "approve", "note": "ok\x00"}, follow=True)
    assert response.status_code == 200
    assert messages_of(response) == ['"deploy to production": note: Null characters are not allowed.']
    assert Approval.objects.get(pk=approval.pk).status == "pending"

"""Fifty concurrent decisions on real PostgreSQL: exactly one wins (one conditional UPDATE)."""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from django.db import connection
from rest_framework.test import APIClient

from approvals.models import Approval, ApprovalEvent
from tests.approvals.conftest import make_approval
from tests.support.factories import bearer, make_admin_token, make_workspace, make_workspace_token

THREADS = 50


@pytest.mark.django_db(transaction=True)
def test_fifty_concurrent_decisions_exactly_one_wins():
    workspace = make_workspace("alpha")
    operator = make_workspace_token(workspace, role="operator", name="operator-1")
    admin = make_admin_token("root")
    approval = make_approval(workspace, options=["a", "b"])
    path = f"/workspaces/{workspace.id}/approvals/{approval.id}/decide"

    barrier = threading.Barrier(THREADS)
    results: list[tuple[int, str | None, str]] = []
    lock = threading.Lock()

    def decide(index: int) -> None:
        # Each thread has its own Django DB connection (connections are per thread).
        try:
            client = APIClient()
            client.credentials(**bearer(operator if index % 2 else admin))
            decision = "approve" if index % 3 else "reject"
            body = {"decision": decision, "option": "a" if index % 2 else "b", "note": f"thread {index}"}
            barrier.wait(timeout=30)
            response = client.post(path, body, format="json")
            payload = response.json()
            with lock:
                results.append((response.status_code, payload.get("code"), payload.get("status", "")))
        finally:
            connection.close()

    threads = [threading.Thread(target=decide, args=(index,)) for index in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert len(results) == THREADS
    statuses = Counter((status, code) for status, code, _ in results)
    assert statuses == {(200, None): 1, (409, "already_decided"): THREADS - 1}, statuses

    winner = next(result for result in results if result[0] == 200)
    row = Approval.objects.get(pk=approval.pk)
    assert row.status == winner[2] and row.status in {"approved", "rejected"}
    assert row.decided_by in {"operator-1", "root"}
    decided = ApprovalEvent.objects.filter(approval=approval, kind="decided")
    assert decided.count() == 1
    assert decided.get().details["status"] == row.status

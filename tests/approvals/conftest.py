"""Approval test helpers."""

from __future__ import annotations

import json
from typing import Any

import pytest

from approvals import services
from approvals.models import Approval
from tests.support.fake_http import FakeResponse


def make_approval(workspace: Any, **kwargs: Any) -> Approval:
    kwargs.setdefault("action", "deploy to production")
    kwargs.setdefault("created_by", "agent-1")
    return services.approval_create(workspace=workspace, **kwargs)


@pytest.fixture
def approval(workspace) -> Approval:
    return make_approval(workspace, options=["now", "tonight"], metadata={"service": "api", "replicas": 3})


def a2a_ok(request: Any) -> FakeResponse:
    """A fake agent's successful JSON-RPC `message/send` answer to `request`."""
    body = {
        "jsonrpc": "2.0",
        "id": request.json()["id"],
        "result": {
            "kind": "message",
            "role": "agent",
            "messageId": "m",
            "parts": [{"kind": "text", "text": "ok"}],
        },
    }
    return FakeResponse(200, json.dumps(body).encode(), {"Content-Type": "application/json"})

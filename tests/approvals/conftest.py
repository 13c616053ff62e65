"""Approval test helpers."""

from __future__ import annotations

from typing import Any

import pytest

from approvals import services
from approvals.models import Approval


def make_approval(workspace: Any, **kwargs: Any) -> Approval:
    kwargs.setdefault("action", "deploy to production")
    kwargs.setdefault("created_by", "agent-1")
    return services.approval_create(workspace=workspace, **kwargs)


@pytest.fixture
def approval(workspace) -> Approval:
    return make_approval(workspace, options=["now", "tonight"], metadata={"service": "api", "replicas": 3})

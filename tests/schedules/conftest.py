"""Helpers for the schedule tests."""

from __future__ import annotations

from typing import Any

import pytest

from schedules import services
from schedules.models import Schedule


@pytest.fixture
def make_schedule(workspace):
    def make(**kwargs: Any) -> Schedule:
        kwargs.setdefault("workspace", workspace)
        kwargs.setdefault("expression", "*/5 * * * *")
        kwargs.setdefault("prompt", "Summarise the inbox.")
        return services.schedule_create(**kwargs)

    return make

"""Database helpers shared by the background steps."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from django.db import InterfaceError, OperationalError, connection

T = TypeVar("T")


def retry_on_lost_connection(step: Callable[[], T]) -> T:
    """Run `step`; if the connection was lost (a restart, a terminated backend), run it once more
    on a new one. Only for idempotent steps outside a transaction block: after the agent has
    answered, recording the answer beats asking the agent again."""
    try:
        return step()
    except (OperationalError, InterfaceError):
        if connection.in_atomic_block:
            raise
        connection.close()
        return step()

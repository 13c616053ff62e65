"""Database helpers shared by the background steps."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from django.db import InterfaceError, OperationalError, connection, connections

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


def release_connections() -> None:
    """Give this thread's (or greenlet's) database connections back before a long wait on a
    network peer: to the pool when one is configured (DATABASE_POOL_MAX_SIZE), else closed. The
    next query takes one again. A connection inside a transaction block is kept (its work is not
    committed yet; the tests' transactions too)."""
    for db in connections.all(initialized_only=True):
        if not db.in_atomic_block:
            db.close()

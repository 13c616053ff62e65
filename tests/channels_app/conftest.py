"""Fixtures of the channel tests."""

from __future__ import annotations

from collections.abc import Sequence

import pytest


class DueJobs(Sequence):
    """(task name, message id) of every stored message the relay is to publish, oldest first:
    what the webhook handed over (read from the rows, the outbox, at each access)."""

    def _items(self) -> list[tuple[str, str]]:
        from channels_app.models import INBOUND, OUTBOUND, ChannelMessage

        items = []
        for kind in (INBOUND, OUTBOUND):
            rows = (
                ChannelMessage.objects.filter(kind.active, relay_due_at__isnull=False, publish_attempt=0)
                .order_by("created_at", "id")
                .values_list("created_at", "id")
            )
            items += [(created, kind.task, str(pk)) for created, pk in rows]
        return [(task, pk) for _, task, pk in sorted(items)]

    def __getitem__(self, index):  # type: ignore[override]
        return self._items()[index]

    def __len__(self) -> int:
        return len(self._items())

    def __eq__(self, other: object) -> bool:
        return self._items() == list(other)  # type: ignore[call-overload]

    def __repr__(self) -> str:
        return repr(self._items())


@pytest.fixture
def frozen_clock(monkeypatch):
    """Sets the clock of the signature windows: `frozen_clock(unix_seconds)`."""
    from channels_app.adapters import base as adapter_base

    def freeze(at: float) -> None:
        monkeypatch.setattr(adapter_base, "current_timestamp", lambda: at)

    return freeze


@pytest.fixture
def handed_over(db) -> DueJobs:
    return DueJobs()

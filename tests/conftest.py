"""Shared fixtures: the loopback-only network guard, API clients and credentials."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from rest_framework.test import APIClient

from tests.support.factories import bearer, make_admin_token, make_workspace, make_workspace_token
from tests.support.network_guard import NetworkGuard


@pytest.fixture(autouse=True)
def network_guard() -> Iterator[NetworkGuard]:
    """Any connection outside 127.0.0.0/8 and ::1 fails the test."""
    guard = NetworkGuard()
    guard.install()
    try:
        yield guard
    finally:
        guard.uninstall()
    if guard.violations:
        pytest.fail("external network access: " + "; ".join(guard.violations))


@pytest.fixture(autouse=True)
def fresh_inbound_hot_path() -> Iterator[None]:
    """Each test starts with no remembered webhook route."""
    from channels_app import ingest

    ingest.verified_routes.clear()
    yield


@pytest.fixture
def api() -> APIClient:
    return APIClient()


@pytest.fixture
def workspace(db):
    return make_workspace("alpha", role="researcher", url="http://127.0.0.1:9/")


@pytest.fixture
def other_workspace(db):
    return make_workspace("beta")


@pytest.fixture
def agent_token(workspace) -> str:
    return make_workspace_token(workspace, role="agent", name="agent-1")


@pytest.fixture
def operator_token(workspace) -> str:
    return make_workspace_token(workspace, role="operator", name="operator-1")


@pytest.fixture
def admin_token(db) -> str:
    return make_admin_token("root")


@pytest.fixture
def as_admin(api, admin_token) -> APIClient:
    api.credentials(**bearer(admin_token))
    return api


@pytest.fixture
def as_agent(api, agent_token) -> APIClient:
    api.credentials(**bearer(agent_token))
    return api


@pytest.fixture
def celery_worker(transactional_db):
    """A real Celery worker process and a real relay process (`manage.py run_relay`) on the test
    database and the test broker."""
    from tests.support.worker import run_worker

    with run_worker() as process:
        yield process


@pytest.fixture
def run_jobs(monkeypatch):
    """`run_jobs()`: what the relay would publish now, run in this process (Celery's eager
    mode), until nothing is due; returns how many tasks ran."""
    from tests.support.worker import run_due_jobs

    return run_due_jobs


@pytest.fixture
def echo_agent():
    """A real A2A echo agent on 127.0.0.1 (same code as `manage.py run_echo_agent`)."""
    from workspaces.echo_agent import start_echo_agent

    server = start_echo_agent()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def fake_http():
    """A programmable fake platform server on 127.0.0.1 (see tests/support/fake_http.py)."""
    from tests.support.fake_http import FakeHttpServer

    with FakeHttpServer() as server:
        yield server


@pytest.fixture
def broker():
    """The test broker's queues (tests/support/worker.BrokerQueue), empty at the start and at
    the end of the test."""
    from django.conf import settings

    from tests.support.worker import BrokerQueue

    queue = BrokerQueue(settings.CELERY_BROKER_URL)
    names = [q.name for q in settings.CELERY_TASK_QUEUES]
    queue.redis.delete(*names)
    yield queue
    queue.redis.delete(*names)


class QueuedInstalls(list):
    """(plugin id,) of every install the relay has yet to publish, read from the rows (the
    outbox) at each access; `clear()` plays the relay having published them."""

    def _rows(self):
        from plugins_app.models import INSTALL, InstalledPlugin

        return InstalledPlugin.objects.filter(INSTALL.active, relay_due_at__isnull=False, publish_attempt=0)

    def _items(self) -> list[tuple[str]]:
        return [(str(pk),) for pk in self._rows().order_by("created_at", "id").values_list("pk", flat=True)]

    def __len__(self) -> int:
        return len(self._items())

    def __iter__(self):
        return iter(self._items())

    def __eq__(self, other: object) -> bool:
        return self._items() == list(other)  # type: ignore[call-overload]

    def clear(self) -> None:
        self._rows().update(relay_due_at=None)


@pytest.fixture
def queued_installs(db) -> QueuedInstalls:
    return QueuedInstalls()

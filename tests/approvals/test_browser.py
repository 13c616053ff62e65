"""A real browser in the admin console: log in, open the pending approvals, approve one.

Headless Chromium from the Debian `chromium` package, driven by Playwright (never
`playwright install`). The browser runs in its own thread so Playwright's event loop never
meets Django's ORM in the test thread.
"""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path
from typing import Any

import pytest
from rest_framework.test import APIClient

from approvals.models import Approval
from tests.approvals.conftest import make_approval
from tests.support.factories import bearer, make_admin_token, make_workspace
from tests.support.worker import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def run_in_browser(profile_dir: Path, steps: Any) -> None:
    """Run `steps(page)` in headless Chromium in a separate thread; re-raise its failure here."""
    from playwright.sync_api import sync_playwright

    failure: list[BaseException] = []

    def target() -> None:
        try:
            with sync_playwright() as playwright:
                context = playwright.chromium.launch_persistent_context(
                    str(profile_dir),
                    executable_path=CHROMIUM,
                    headless=True,
                    args=CHROMIUM_ARGS,
                )
                try:
                    context.set_default_timeout(15_000)
                    steps(context.pages[0] if context.pages else context.new_page())
                finally:
                    context.close()
        except BaseException as exc:  # handed to the test thread
            failure.append(exc)

    thread = threading.Thread(target=target, name="browser")
    thread.start()
    thread.join(timeout=120)
    assert not thread.is_alive(), "the browser did not finish in time"
    if failure:
        raise failure[0]


@pytest.mark.skipif(
    shutil.which(CHROMIUM) is None and not os.environ.get("CI"),
    reason="Debian chromium is not installed (.ci/run installs it; in CI a missing browser fails)",
)
def test_operator_approves_in_the_admin_console(
    live_server, celery_worker, echo_agent, django_user_model, tmp_path
):
    django_user_model.objects.create_superuser("olivia", "olivia@example.com", "correct horse")
    workspace = make_workspace("release-bot", url=echo_agent.url)
    other = make_approval(workspace, action="rotate the signing keys")
    target = make_approval(
        workspace,
        action="deploy v2.3 to production",
        options=["now", "tonight"],
        metadata={"service": "api", "replicas": 3},
    )
    profile = tmp_path / "chromium-profile"
    profile.mkdir()
    # Screenshots for a human to look at: BROWSER_TEST_ARTIFACTS=/some/dir keeps them.
    shots = Path(os.environ.get("BROWSER_TEST_ARTIFACTS") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    screenshot = shots / "4-approved.png"

    def steps(page: Any) -> None:
        page.goto(f"{live_server.url}/admin/login/?next=/admin/")
        page.fill("#id_username", "olivia")
        page.fill("#id_password", "correct horse")
        page.click("input[type=submit]")
        page.wait_for_selector("#pending-approvals")
        assert page.inner_text("#pending-approvals strong") == "2"
        page.screenshot(path=str(shots / "1-index.png"), full_page=True)

        page.click("#pending-approvals a")
        page.wait_for_selector("#result_list")
        assert "status=pending" in page.url
        page.screenshot(path=str(shots / "2-pending.png"), full_page=True)
        page.click("text=deploy v2.3 to production")

        page.wait_for_selector("#approve-button")
        assert '"replicas": 3' in page.inner_text("pre.approval-metadata")
        page.select_option("#decide-option", "tonight")
        page.fill("#decide-note", "after the backup finishes")
        page.screenshot(path=str(shots / "3-detail.png"), full_page=True)
        page.click("#approve-button")
        page.wait_for_selector("ul.messagelist li.success")
        assert "approved" in page.inner_text("ul.messagelist")
        assert page.query_selector("#approve-button") is None
        page.screenshot(path=str(screenshot), full_page=True)

    run_in_browser(profile, steps)
    assert screenshot.exists()

    api = APIClient()
    api.credentials(**bearer(make_admin_token("checker")))
    body = api.get(f"/workspaces/{workspace.id}/approvals/{target.id}").json()
    assert body["status"] == "approved"
    assert body["decision_option"] == "tonight"
    assert body["note"] == "after the backup finishes"
    assert body["decided_by"] == "olivia"
    assert api.get(f"/workspaces/{workspace.id}/approvals/{other.id}").json()["status"] == "pending"

    wait_for(lambda: Approval.objects.get(pk=target.pk).notified_at, message="the agent notified")
    told = [m for m in echo_agent.received if m.get("metadata", {}).get("approval_id") == str(target.id)]
    assert len(told) == 1
    assert told[0]["metadata"]["status"] == "approved"
    assert told[0]["metadata"]["decided_by"] == "olivia"

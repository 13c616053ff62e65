"""Bundle import jobs in the admin console can be searched."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


def test_bundle_import_jobs_have_a_search_box(client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("root", "root@example.test", "pw"))
    response = client.get("/admin/templates_app/bundleimportjob/", {"q": "org.json"})
    assert response.status_code == 200
    assert 'id="searchbar"' in response.content.decode()

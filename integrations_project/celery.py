"""Celery application: configured from Django settings (CELERY_* names), tasks found per app."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "integrations_project.settings")

app = Celery("integrations_project")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

"""Celery application: configured from Django settings (CELERY_* names), tasks found per app."""

import logging.config
import os

from celery import Celery
from celery.signals import setup_logging

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "integrations_project.settings")

app = Celery("integrations_project")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@setup_logging.connect
def use_django_logging(*, loglevel: int | str | None = None, **kwargs: object) -> None:
    """Workers and Beat log exactly like the web processes (LOG_FORMAT=json, request ids) instead
    of Celery replacing the root logger's handlers with its own format. A `--loglevel` given to
    the worker still sets the level (else LOG_LEVEL does)."""
    from django.conf import settings

    logging.config.dictConfig(settings.LOGGING)
    if loglevel:
        logging.getLogger().setLevel(loglevel)

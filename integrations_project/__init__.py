"""Integrations API project package; exposes the Celery app so `celery -A integrations_project` works."""

from integrations_project.celery import app as celery_app

__all__ = ("celery_app",)

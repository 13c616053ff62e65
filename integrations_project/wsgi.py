"""WSGI entry point: `integrations_project.wsgi:application`."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "integrations_project.settings")

application = get_wsgi_application()

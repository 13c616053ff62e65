"""WSGI entry point of the benchmark server (production settings + the bare view)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.bench_settings")
application = get_wsgi_application()

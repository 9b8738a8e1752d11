"""WSGI entry point for gunicorn: `gunicorn campus.wsgi`."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "campus.settings")
application = get_wsgi_application()

"""WSGI entry point for gunicorn: `gunicorn config.wsgi`."""

import gc
import os

from django.core.wsgi import get_wsgi_application
from django.urls import get_resolver

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
application = get_wsgi_application()

# Load every view and API schema now rather than at the first request, then take what is
# loaded out of the garbage collector's sight: the ~120,000 long-lived objects of Django, the
# apps and their libraries would otherwise be traversed by every full collection, a ~50 ms
# pause that landed on about one request in ten (bench/README.md, "Measurements behind the code").
get_resolver().url_patterns  # noqa: B018 (imports the URLconf)
gc.collect()
gc.freeze()

"""gunicorn's configuration, read from the working directory by `gunicorn config.wsgi` (the
Docker image and bench/bookings.py both start it so). Command-line options override it.

Threaded workers (`gthread`) keep HTTP connections alive between requests (sync workers close
each one after its response) and serve a request while another waits on the database.
Django, psycopg and the app's per-process caches are thread-safe; each thread holds its own
persistent database connection (DB_CONN_MAX_AGE).
"""

import os

worker_class = "gthread"
workers = int(os.environ.get("WEB_WORKERS", "3"))
threads = int(os.environ.get("WEB_THREADS", "4"))
keepalive = 5  # seconds an idle client connection is kept (behind a proxy that reuses them)

# Persistent database connections: this file runs before the workers load Django, and its
# threads live as long as the worker. (Off by default: the development server's threads die
# after each request and would each leave a connection open.)
os.environ.setdefault("DB_CONN_MAX_AGE", "60")

# gunicorn sets wsgi.url_scheme from X-Forwarded-Proto when the peer is one of these: the
# same proxies as Django's (config.ops.ForwardedHeaders), rather than gunicorn's 127.0.0.1.
forwarded_allow_ips = os.environ.get("TRUSTED_PROXIES", "")

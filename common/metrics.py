"""Prometheus metrics, defined once and incremented where things happen (the booking engine,
the bridge, the request middleware); `config.ops.metrics` serves them at /metrics. Under
gunicorn with several workers, set PROMETHEUS_MULTIPROC_DIR to an empty directory shared by
the workers, so that /metrics adds up every process."""

from prometheus_client import Counter, Gauge, Histogram

REQUESTS = Counter(
    "technocampus_http_requests_total", "HTTP requests answered", ["method", "status"]
)
BOOKINGS_CREATED = Counter("technocampus_bookings_created_total", "Bookings created", ["kind"])
BOOKINGS_REFUSED = Counter(
    "technocampus_bookings_refused_total", "Booking requests refused", ["code"]
)
DECISIONS = Counter("technocampus_access_decisions_total", "Access decisions", ["result", "reason"])
DECISION_SECONDS = Histogram(
    "technocampus_access_decision_seconds",
    "Time from scan received to decision published",
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0),
)
CONTROLLERS_ONLINE = Gauge(
    "technocampus_controllers_online", "Controllers online", multiprocess_mode="livemax"
)
ACL_LAGGING = Gauge(
    "technocampus_allowlists_lagging",
    "Online controllers that did not report the allow-list version pushed to them within 60 s",
    multiprocess_mode="livemax",
)
BRIDGE_RECONNECTS = Counter(
    "technocampus_bridge_reconnects_total",
    "Bridge reconnections to the broker, by connection: broker (decisions), broker-acl "
    "(allow-lists)",
    ["to"],
)
SCANS_RATE_LIMITED = Counter(
    "technocampus_access_scans_rate_limited_total",
    "Badge scans dropped unanswered: beyond their controller's rate limit (SCAN_RATE, SCAN_BURST)",
)

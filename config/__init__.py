"""The project package: settings, root URLs, WSGI, the one NinjaAPI, operations endpoints,
logging, the shared page layout, the home page and the demo. It sits on top of the apps
(campus ← bookings ← labs ← access) and may import any of them; none imports it."""

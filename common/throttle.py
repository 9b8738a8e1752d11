"""Failure counters shared by every worker and replica, and the caller's address they count by."""

import hashlib

from django.core.cache import cache


def client_ip(request) -> str:
    """The caller's address, as ForwardedHeaders left it in REMOTE_ADDR."""
    if request is None:
        return "-"
    return request.META.get("REMOTE_ADDR") or "-"


class Throttle:
    """At most `limit` failures per key in a window of `window` seconds from the first one.

    Counted in the default cache, which every worker and replica shares (the database's
    cache table, or CACHE_URL's Redis): `add` opens a window, `incr` counts in it atomically
    and leaves its end alone (common.cache.DatabaseCache does so for the database). Keys are
    hashed: they hold e-mail addresses and token prefixes typed by anyone.
    """

    def __init__(self, name: str, limit: int, window: int):
        self.name, self.limit, self.window = name, limit, window

    def _key(self, key: str) -> str:
        return f"throttle:{self.name}:{hashlib.sha256(key.encode()).hexdigest()[:32]}"

    def count(self, key: str) -> int:
        return cache.get(self._key(key), 0)

    def blocked(self, key: str) -> bool:
        return self.count(key) >= self.limit

    def fail(self, key: str) -> int:
        """Count one failure; the number counted in the window so far."""
        k = self._key(key)
        if cache.add(k, 1, self.window):
            return 1
        try:
            return cache.incr(k)
        except ValueError:  # the window ended between the two calls
            cache.set(k, 1, self.window)
            return 1

    def reset(self, key: str) -> None:
        cache.delete(self._key(key))

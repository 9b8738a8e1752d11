"""Django's database cache, with an `incr` that counts right when several processes count.

Django's own `incr` reads the value, then writes it back with the default timeout: two
workers counting at once lose one increment, and every increment pushes the entry's expiry
back. Rate limits count failures with `add` then `incr` from every worker and replica, so
here the row is locked from the read to the write (SELECT … FOR UPDATE on PostgreSQL; SQLite's
IMMEDIATE transaction takes the write lock at BEGIN) and the expiry is left as it was.
"""

import base64
import pickle

from django.core.cache.backends import db
from django.db import connections, router, transaction


class DatabaseCache(db.DatabaseCache):
    def incr(self, key, delta=1, version=None):
        made_key = self.make_and_validate_key(key, version=version)
        alias = router.db_for_write(self.cache_model_class)
        connection = connections[alias]
        quote = connection.ops.quote_name
        table = quote(self._table)
        with transaction.atomic(using=alias), connection.cursor() as cursor:
            if connection.features.has_select_for_update:
                cursor.execute(
                    f"SELECT 1 FROM {table} WHERE {quote('cache_key')} = %s FOR UPDATE",  # noqa: S608
                    [made_key],
                )
            value = self.get(key, self._missing_key, version=version)
            if value is self._missing_key:
                raise ValueError(f"Key {key!r} not found")
            value += delta
            encoded = base64.b64encode(pickle.dumps(value, self.pickle_protocol)).decode("latin1")
            cursor.execute(
                f"UPDATE {table} SET {quote('value')} = %s WHERE {quote('cache_key')} = %s",  # noqa: S608
                [encoded, made_key],
            )
        return value

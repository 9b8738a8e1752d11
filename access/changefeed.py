"""The change feed's database triggers: every write to a table the access decision reads
bumps `access_changeversion` in the writer's transaction (see access.models.ChangeVersion).

They are (re)installed after every `migrate` (post_migrate), not only by migration 0002:
SQLite rebuilds a table (copy, drop, rename) for many schema changes, and the rebuild drops
its triggers; a later migration of a watched table would silently stop the feed otherwise.

On PostgreSQL the trigger also notifies CHANNEL, delivered when the writer commits: the bridge's
refresher LISTENs (`Listener`) and wakes at once instead of at its next poll, whichever process
wrote. The poll stays as the fallback (and the only way on SQLite).
"""

import threading

from django.db import connection

CHANNEL = "access_change_feed"

# Person: only the columns that change rights, so that a sign-in (last_login) does not make
# every bridge reload. Site, building, floor: only the way from a door's space to its site's
# time zone (access.facts.door_zones).
WATCHED = {
    "access_credential": None,
    "access_visitorpass": None,
    "access_door": None,
    "access_sitemode": None,
    "campus_person": [
        "is_active",
        "is_superuser",
        "is_facility_staff",
        "is_lab_technician",
        "is_tenant_admin",
        "tenant_id",
    ],
    "campus_tenant": None,
    "campus_lease": None,
    "campus_space": None,
    "campus_floor": ["building_id"],
    "campus_building": ["site_id"],
    "campus_site": ["time_zone"],
    "bookings_resource": None,
    "labs_equipment": None,
    "labs_qualification": None,
}

PG_FUNCTION = """
CREATE OR REPLACE FUNCTION access_bump_change_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO access_changeversion (id, version) VALUES (1, 1)
    ON CONFLICT (id) DO UPDATE SET version = access_changeversion.version + 1;
    PERFORM pg_notify('access_change_feed', '');
    RETURN NULL;
END
$$
"""
SQLITE_BUMP = (
    "INSERT OR IGNORE INTO access_changeversion (id, version) VALUES (1, 0); "
    "UPDATE access_changeversion SET version = version + 1 WHERE id = 1;"
)


def install(connection) -> None:
    """Create the triggers that are missing; safe to run any number of times."""
    with connection.cursor() as cursor:
        run = cursor.execute
        if connection.vendor == "postgresql":
            run(PG_FUNCTION)
            for table, columns in WATCHED.items():
                update = "UPDATE OF " + ", ".join(columns) if columns else "UPDATE"
                run(f"DROP TRIGGER IF EXISTS access_change_feed ON {table}")
                # BEFORE and per statement: the version row is locked before any row of the
                # statement, so two writers queue on it instead of deadlocking on each other.
                run(
                    f"CREATE TRIGGER access_change_feed BEFORE INSERT OR DELETE OR {update} "
                    f"ON {table} FOR EACH STATEMENT EXECUTE FUNCTION access_bump_change_version()"
                )
        elif connection.vendor == "sqlite":
            for table, columns in WATCHED.items():
                update = "UPDATE OF " + ", ".join(columns) if columns else "UPDATE"
                for event in ("INSERT", "DELETE", update):
                    name = f"access_feed_{table}_{event.split()[0].lower()}"
                    run(
                        f"CREATE TRIGGER IF NOT EXISTS {name} AFTER {event} ON {table} "
                        f"BEGIN {SQLITE_BUMP} END"
                    )
        else:
            raise NotImplementedError(f"no change-feed triggers for {connection.vendor}")


def install_after_migrate(sender, using="default", **kwargs):
    from django.db import connections

    install(connections[using])


class Listener:
    """Waits for the change feed to move, on this thread's database connection: LISTEN/NOTIFY
    on PostgreSQL (listening again after a reconnection), the whole timeout elsewhere. A
    notification that came while the caller was busy (reloading) ends the next wait at once."""

    def __init__(self, stop: threading.Event):
        self.stop = stop
        self.listening_on = None

    def wait(self, timeout: float) -> bool:
        """Until a change, `timeout` seconds or `stop`; returns whether a change was notified.
        Database errors propagate (Django's)."""
        if connection.vendor != "postgresql":
            self.stop.wait(timeout)
            return False
        connection.ensure_connection()
        raw = connection.connection
        with connection.wrap_database_errors:
            if self.listening_on is not raw:
                raw.execute(f"LISTEN {CHANNEL}")
                self.listening_on = raw
            notified = any(True for _ in raw.notifies(timeout=timeout, stop_after=1))
            if notified:  # one reload covers every change committed so far
                for _ in raw.notifies(timeout=0):
                    pass
        return notified

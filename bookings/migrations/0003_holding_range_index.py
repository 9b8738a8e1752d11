"""A GiST index on (blocked range, resource) for every booking that holds its slot.

The exclusion constraint's index (0002) covers confirmed and checked-in bookings only, so
the searches that must also see pending requests (availability, free slots, the engine's
check before a direct booking) had no range index and scanned a resource's whole history.
PostgreSQL only, like 0002; same column order, measured faster for availability.
"""

from django.db import migrations


class PostgresOnlySQL(migrations.RunSQL):
    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            super().database_forwards(app_label, schema_editor, from_state, to_state)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            super().database_backwards(app_label, schema_editor, from_state, to_state)


class Migration(migrations.Migration):
    dependencies = [("bookings", "0002_no_overlap_constraint")]

    operations = [
        PostgresOnlySQL(
            sql="""
                CREATE INDEX booking_holding_range ON bookings_booking
                USING gist (tstzrange(blocked_start, blocked_end, '[)'), resource_id)
                WHERE (status IN ('pending', 'confirmed', 'checked_in'))
            """,
            reverse_sql="DROP INDEX booking_holding_range",
        ),
    ]

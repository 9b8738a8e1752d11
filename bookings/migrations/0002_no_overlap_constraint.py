"""Invariant 1 in the database: confirmed and checked-in bookings of one resource never overlap.

PostgreSQL only (SQLite has no exclusion constraints; its IMMEDIATE transactions serialise the
booking writers instead). The range comes first: measured ~25x faster for availability
queries than (resource, range) on 500 resources x 200,000 bookings (docs/design.md).
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
    dependencies = [("bookings", "0001_initial")]

    operations = [
        PostgresOnlySQL(
            sql=[
                "CREATE EXTENSION IF NOT EXISTS btree_gist",
                """
                ALTER TABLE bookings_booking ADD CONSTRAINT booking_no_overlap
                EXCLUDE USING gist (
                    tstzrange(blocked_start, blocked_end, '[)') WITH &&,
                    resource_id WITH =
                ) WHERE (status IN ('confirmed', 'checked_in'))
                """,
            ],
            reverse_sql=["ALTER TABLE bookings_booking DROP CONSTRAINT booking_no_overlap"],
        ),
    ]

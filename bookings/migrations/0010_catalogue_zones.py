"""The catalogue holds each resource's time zone, its site's (campus.clock): the writes that
can change it change the catalogue's version too (the triggers of migration 0005). Only the
columns on the way from a space to its site's zone: a space renamed, a floor added, leave the
catalogue be. A machine's zone comes through its lab (labs migration 0005)."""

from django.db import migrations

# table → the columns whose update may change a resource's zone
WATCHED = {
    "campus_site": "time_zone",
    "campus_building": "site_id",
    "campus_floor": "building_id",
    "campus_space": "floor_id",
}
SQLITE_BUMP = "UPDATE bookings_catalogueversion SET version = lower(hex(randomblob(16))) WHERE id = 1"


def install(apps, schema_editor):
    connection = schema_editor.connection
    with connection.cursor() as cur:
        for table, column in WATCHED.items():
            if connection.vendor == "postgresql":
                cur.execute(
                    f"CREATE TRIGGER {table}_catalogue AFTER UPDATE OF {column} ON {table} "
                    "FOR EACH STATEMENT EXECUTE FUNCTION bookings_catalogue_changed()"
                )
            elif connection.vendor == "sqlite":
                cur.execute(
                    f"CREATE TRIGGER {table}_catalogue_update AFTER UPDATE OF {column} "
                    f"ON {table} BEGIN {SQLITE_BUMP}; END"
                )


def uninstall(apps, schema_editor):
    connection = schema_editor.connection
    with connection.cursor() as cur:
        for table in WATCHED:
            if connection.vendor == "postgresql":
                cur.execute(f"DROP TRIGGER IF EXISTS {table}_catalogue ON {table}")
            elif connection.vendor == "sqlite":
                cur.execute(f"DROP TRIGGER IF EXISTS {table}_catalogue_update")


class Migration(migrations.Migration):
    dependencies = [
        ("bookings", "0009_qualification_flags"),
        ("campus", "0004_site_time_zone"),
    ]

    operations = [migrations.RunPython(install, uninstall)]

"""The catalogue version row and the triggers that change it (bookings.catalogue).

Every statement that writes one of the catalogue's tables sets the version to a new random
value, in the writer's transaction: other processes see the new version when they see the
new data, and a rollback restores the old version with the old data.
"""

from django.db import migrations, models

TABLES = (
    "bookings_resource",
    "bookings_resource_companions",
    "bookings_bookingpolicy",
    "bookings_closure",
    "campus_space_features",
    "campus_feature",
)

PG_FUNCTION = """
CREATE OR REPLACE FUNCTION bookings_catalogue_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE bookings_catalogueversion SET version = md5(random()::text || clock_timestamp()::text)
    WHERE id = 1;
    RETURN NULL;
END $$
"""
SQLITE_BUMP = "UPDATE bookings_catalogueversion SET version = lower(hex(randomblob(16))) WHERE id = 1"


def install(apps, schema_editor):
    connection = schema_editor.connection
    with connection.cursor() as cur:
        if connection.vendor == "postgresql":
            cur.execute(
                "INSERT INTO bookings_catalogueversion (id, version) "
                "VALUES (1, md5(random()::text))"
            )
            cur.execute(PG_FUNCTION)
            for table in TABLES:
                cur.execute(
                    f"CREATE TRIGGER {table}_catalogue AFTER INSERT OR UPDATE OR DELETE OR "
                    f"TRUNCATE ON {table} FOR EACH STATEMENT "
                    "EXECUTE FUNCTION bookings_catalogue_changed()"
                )
        elif connection.vendor == "sqlite":
            cur.execute(
                "INSERT INTO bookings_catalogueversion (id, version) "
                "VALUES (1, lower(hex(randomblob(16))))"
            )
            for table in TABLES:
                for event in ("INSERT", "UPDATE", "DELETE"):
                    cur.execute(
                        f"CREATE TRIGGER {table}_catalogue_{event.lower()} AFTER {event} "
                        f"ON {table} BEGIN {SQLITE_BUMP}; END"
                    )


def uninstall(apps, schema_editor):
    connection = schema_editor.connection
    with connection.cursor() as cur:
        if connection.vendor == "postgresql":
            for table in TABLES:
                cur.execute(f"DROP TRIGGER IF EXISTS {table}_catalogue ON {table}")
            cur.execute("DROP FUNCTION IF EXISTS bookings_catalogue_changed()")
        elif connection.vendor == "sqlite":
            for table in TABLES:
                for event in ("insert", "update", "delete"):
                    cur.execute(f"DROP TRIGGER IF EXISTS {table}_catalogue_{event}")


class Migration(migrations.Migration):
    dependencies = [
        ("bookings", "0004_person_end_index"),
        ("campus", "0002_tenant_included_minutes_per_month_and_more"),
    ]

    operations = [
        migrations.CreateModel(
            name="CatalogueVersion",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("version", models.CharField(max_length=32)),
            ],
        ),
        migrations.RunPython(install, uninstall),
    ]

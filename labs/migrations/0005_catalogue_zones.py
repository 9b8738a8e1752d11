"""A machine's time zone is its lab's site's, held by the bookings catalogue with its
resource: a machine added, removed or moved to another lab changes the catalogue's version
(bookings migrations 0005 and 0010)."""

from django.db import migrations

SQLITE_BUMP = "UPDATE bookings_catalogueversion SET version = lower(hex(randomblob(16))) WHERE id = 1"
EVENTS = ("INSERT", "DELETE", "UPDATE OF location_id, resource_id")


def install(apps, schema_editor):
    connection = schema_editor.connection
    with connection.cursor() as cur:
        if connection.vendor == "postgresql":
            cur.execute(
                "CREATE TRIGGER labs_equipment_catalogue AFTER " + " OR ".join(EVENTS) + " ON "
                "labs_equipment FOR EACH STATEMENT EXECUTE FUNCTION bookings_catalogue_changed()"
            )
        elif connection.vendor == "sqlite":
            for event in EVENTS:
                name = f"labs_equipment_catalogue_{event.split()[0].lower()}"
                cur.execute(
                    f"CREATE TRIGGER {name} AFTER {event} ON labs_equipment BEGIN {SQLITE_BUMP}; END"
                )


def uninstall(apps, schema_editor):
    connection = schema_editor.connection
    with connection.cursor() as cur:
        if connection.vendor == "postgresql":
            cur.execute("DROP TRIGGER IF EXISTS labs_equipment_catalogue ON labs_equipment")
        elif connection.vendor == "sqlite":
            for event in EVENTS:
                name = f"labs_equipment_catalogue_{event.split()[0].lower()}"
                cur.execute(f"DROP TRIGGER IF EXISTS {name}")


class Migration(migrations.Migration):
    dependencies = [
        ("labs", "0004_tasmota_reader_controller"),
        ("bookings", "0010_catalogue_zones"),
    ]

    operations = [migrations.RunPython(install, uninstall)]

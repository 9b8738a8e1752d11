"""Data migrations of the labs app, run forward on rows written under the previous schema."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("labs", "0003_power_state")]
AFTER = [("labs", "0004_tasmota_reader_controller")]


def migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


def test_a_tasmota_machine_without_a_reader_is_taken_off_badge_control(campus):
    old = migrate(BEFORE)
    Resource = old.get_model("bookings", "Resource")
    Equipment = old.get_model("labs", "Equipment")
    lab = old.get_model("campus", "Space").objects.get(pk=campus["lab"].pk)

    def machine(code, **controller):
        resource = Resource.objects.create(code=code, name=code, kind="equipment")
        return Equipment.objects.create(
            resource=resource, equipment_class="laser", location=lab, **controller
        ).pk

    orphan = machine("LASER-1", controller_kind="tasmota", tasmota_topic="laser1")
    wired = machine(
        "LASER-2", controller_kind="tasmota", tasmota_topic="laser2", controller_id="ctrl-m"
    )
    native = machine("EMC-1", controller_kind="native", controller_id="ctrl-cem")
    try:
        new = migrate(AFTER).get_model("labs", "Equipment")
        kinds = dict(new.objects.values_list("pk", "controller_kind"))
        assert kinds == {orphan: "none", wired: "tasmota", native: "native"}
        # Its topic is kept: staff only name the reader's controller and set the kind again.
        assert new.objects.get(pk=orphan).tasmota_topic == "laser1"
    finally:
        migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())

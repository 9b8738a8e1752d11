"""Access fixtures on top of the shared cast: two controllers and the doors they drive.

ctrl-a drives the main entrance (perimeter), Acme's office door and the lab door; ctrl-b the
Globex office door.
"""

import pytest

from access.models import Controller, Door


@pytest.fixture
def controllers(db):
    return {
        "a": Controller.objects.create(id="ctrl-a", name="Ground floor"),
        "b": Controller.objects.create(id="ctrl-b", name="First floor"),
    }


@pytest.fixture
def doors(campus, controllers):
    a, b = controllers["a"], controllers["b"]
    return {
        "entrance": Door.objects.create(
            id="D-001",
            name="Main entrance",
            controller=a,
            kind="perimeter",
            direction="in",
            schedule=[[d, "07:00", "20:00"] for d in range(1, 6)],
        ),
        "acme": Door.objects.create(
            id="D-101", name="Acme", controller=a, kind="office", space=campus["office_acme"]
        ),
        "lab": Door.objects.create(
            id="D-010", name="EMC lab", controller=a, kind="lab", space=campus["lab"]
        ),
        "globex": Door.objects.create(
            id="D-102", name="Globex", controller=b, kind="office", space=campus["office_globex"]
        ),
    }

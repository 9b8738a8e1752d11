"""The one qualification rule (invariant 4): is this person qualified for this resource at t.

Booking an equipment, opening its lab's door and powering it all ask this function.
"""

from datetime import datetime

from django.db.models import Q

from labs.models import Equipment, Qualification


def qualification_filter(at_start: datetime, at_end: datetime | None = None) -> Q:
    """Qualifications in force over [at_start, at_end] (one instant when at_end is None)."""
    until = at_end or at_start
    return (
        (Q(revoked_at__isnull=True) | Q(revoked_at__gt=until))
        & Q(valid_from__lte=at_start)
        & (Q(valid_until__isnull=True) | Q(valid_until__gte=until))
    )


def is_qualified(
    person_id: int, resource, at_start: datetime, at_end: datetime | None = None
) -> bool:
    """True when a qualification covers the equipment (or its class) over the whole period.

    For a lab space, a qualification on any equipment located in that lab counts.
    """
    equipment = Equipment.objects.filter(resource=resource).first()
    if equipment is not None:
        target = Q(equipment=equipment) | Q(equipment_class=equipment.equipment_class)
    elif resource.space_id is not None:
        in_lab = Equipment.objects.filter(location_id=resource.space_id)
        classes = in_lab.values("equipment_class")
        target = Q(equipment__in=in_lab) | Q(equipment_class__in=classes)
    else:
        return False
    return Qualification.objects.filter(
        target, qualification_filter(at_start, at_end), person_id=person_id
    ).exists()


def requires_qualification(resource) -> bool:
    """Equipment always needs a qualification; a space only when its policy says so."""
    return resource.kind == "equipment"

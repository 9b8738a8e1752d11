"""Filters of the reports page: minutes as hours, tenths as a percentage, kind names."""

from django import template
from django.utils.formats import get_format

from bookings.models import ResourceKind
from labs import reports

register = template.Library()


def _comma() -> bool:
    return get_format("DECIMAL_SEPARATOR") == ","


@register.filter
def hours(minutes: int) -> str:
    return reports.hours(minutes, _comma())


@register.filter
def percent(tenths: int) -> str:
    return reports.percent(tenths, _comma())


@register.filter
def kind_label(kind: str) -> str:
    return ResourceKind(kind).label if kind in ResourceKind.values else kind

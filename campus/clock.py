"""The building's time: times are stored in UTC and read, shown and reasoned about (opening
hours, days, months) in the building's time zone."""

from zoneinfo import ZoneInfo

from django.conf import settings


def building_tz() -> ZoneInfo:
    return ZoneInfo(settings.TIME_ZONE)

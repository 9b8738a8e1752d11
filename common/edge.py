"""What the API accepts at its edge: strict pydantic types for every input schema and query
parameter, defined once.

- In a JSON body an integer is a JSON integer and a boolean `true` or `false`: never `true`
  for 1, `1.0`, `"1"` or `0` for false. A query string carries only text, so there an integer
  is its decimal digits and a boolean the word `true` or `false`.
- A date-time is an RFC 3339 string (`2030-01-07T10:00:00+01:00`, or `Z`; seconds may be left
  out); without an offset it is local time of the default zone (`settings.TIME_ZONE`, the
  first site's: campus/clock.py). Never a number of seconds since 1970. It is answered in
  that zone.
- A date is `YYYY-MM-DD`, a month `YYYY-MM`.
- Every date, date-time and month lies between EARLIEST and LATEST (local dates), so that no
  booking of year 458 or of 1970–2000 can be made, and no date of a time zone's historic
  local mean time (Paris: +00:09:21 before 1911) reaches an answer.

A refusal is a pydantic error, answered 422 `invalid` with the field named (config.api).
"""

import re
from datetime import UTC, date, datetime, timedelta
from typing import Annotated

from django.utils import timezone
from pydantic import AfterValidator, BeforeValidator, Field, Strict
from pydantic_core import PydanticCustomError

EARLIEST = date(2000, 1, 1)
LATEST = date(2100, 12, 31)
BIGINT = 2**63 - 1  # the largest integer every database column here can hold

WINDOW = f"between {EARLIEST.isoformat()} and {LATEST.isoformat()}"

_DATE_TIME = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?"
    r"(?P<offset>[Zz]|[+-]\d{2}:\d{2})?"
)
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_MONTH = re.compile(r"(\d{4})-(\d{2})")
_INTEGER = re.compile(r"-?\d+")


def _out_of_window(what: str):
    return PydanticCustomError("out_of_window", f"must be a {what} {WINDOW}")


def _parse_date_time(value):
    if isinstance(value, datetime):  # from Python code (the portal, tests): already parsed
        return value
    if not isinstance(value, str) or not _DATE_TIME.fullmatch(value):
        raise PydanticCustomError(
            "date_time_format",
            "must be an RFC 3339 date-time such as 2030-01-07T10:00:00+01:00 (without an "
            "offset: the building's local time)",
        )
    try:
        return datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
    except ValueError:
        raise PydanticCustomError("date_time_format", "is not a valid date-time") from None


def _in_window(value: datetime) -> datetime:
    """The same instant in the default zone, if its local date is in the window."""
    tz = timezone.get_default_timezone()
    if value.tzinfo is None:
        value = value.replace(tzinfo=tz)
    # Compared in UTC first: converting a time of year 1 or 9999 could overflow.
    first = datetime.combine(EARLIEST, datetime.min.time(), tzinfo=tz)
    after = datetime.combine(LATEST + timedelta(days=1), datetime.min.time(), tzinfo=tz)
    if not first <= value < after:
        raise _out_of_window("date-time")
    return value.astimezone(tz)


def _parse_date(value):
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not _DATE.fullmatch(value):
        raise PydanticCustomError("date_format", "must be a date written YYYY-MM-DD")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise PydanticCustomError("date_format", "is not a valid date") from None


def _day_in_window(value: date) -> date:
    if not EARLIEST <= value <= LATEST:
        raise _out_of_window("date")
    return value


def _month(value):
    match = _MONTH.fullmatch(value) if isinstance(value, str) else None
    if match is None or not 1 <= int(match[2]) <= 12:
        raise PydanticCustomError("month_format", "must be a month written YYYY-MM")
    if not EARLIEST <= date(int(match[1]), int(match[2]), 1) <= LATEST:
        raise _out_of_window("month")
    return value


def _integer_text(value):
    if isinstance(value, str):
        if not _INTEGER.fullmatch(value):
            raise PydanticCustomError("int_parsing", "must be an integer written in digits")
        if len(value.lstrip("-")) > len(str(BIGINT)):  # and Python's int() has a limit
            raise PydanticCustomError("int_too_large", "is beyond any stored number")
        return int(value)
    return value


def _boolean_text(value):
    if isinstance(value, str):
        if value not in ("true", "false"):
            raise PydanticCustomError("bool_parsing", "must be true or false")
        return value == "true"
    return value


# ---- in JSON bodies

Int = Annotated[int, Strict()]
Id = Annotated[int, Strict(), Field(ge=1, le=BIGINT)]
Flag = Annotated[bool, Strict()]

# ---- in query strings (text)


def query_int(ge: int, le: int):
    """An integer from ge to le in a query string. The bounds come before the text's parsing
    so that the OpenAPI schema shows them as `minimum` and `maximum`."""
    return Annotated[int, Strict(), Field(ge=ge, le=le), BeforeValidator(_integer_text)]


QueryId = query_int(1, BIGINT)
QueryFlag = Annotated[bool, Strict(), BeforeValidator(_boolean_text)]


def _blank_is_none(value):
    return None if value == "" else value


def query_text(max_length: int):
    """Optional text of at most max_length characters in a query string; empty (`?door=`)
    is the same as not given: None."""
    text = Annotated[str, Field(max_length=max_length)]
    return Annotated[text | None, BeforeValidator(_blank_is_none)]


# ---- both

When = Annotated[
    datetime,
    BeforeValidator(_parse_date_time),
    AfterValidator(_in_window),
    Field(description=f"RFC 3339 date-time {WINDOW}; without an offset: the building's local time"),
]
Day = Annotated[
    date,
    BeforeValidator(_parse_date),
    AfterValidator(_day_in_window),
    Field(description=f"YYYY-MM-DD, {WINDOW}"),
]
Month = Annotated[
    str,
    Field(pattern=r"^\d{4}-\d{2}$"),  # before the parsing: so that the schema shows it
    BeforeValidator(_month),
    Field(description=f"YYYY-MM, {WINDOW}"),
]


def rfc3339(value: datetime) -> datetime:
    """The instant as RFC 3339 can write it: an offset of whole minutes (a historic local mean
    time such as Paris' +00:09:21 before 1911 is given in UTC instead)."""
    offset = value.utcoffset()
    if offset is not None and offset % timedelta(minutes=1):
        return value.astimezone(UTC)
    return value

"""Domain errors, and the one table of error codes with their HTTP statuses.

Every error the API answers is `{"detail", "code"}` with a stable code. `CODES` says once what
each code means and with which status it is answered: the API's exception handlers take the
status from it, the API's OpenAPI description and `docs/errors.md` are rendered from it
(`uv run python -m common.errors > docs/errors.md`), and each operation lists in the OpenAPI
document the codes it may answer.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Code:
    status: int
    meaning: str


CODES: dict[str, Code] = {
    # -- around the operations
    "bad_request": Code(400, "Refused before any operation (a Host header not allowed)."),
    "unauthenticated": Code(401, "Not signed in, or the token is unknown or revoked."),
    "method_not_allowed": Code(405, "The path takes other methods (listed in `Allow`)."),
    "too_large": Code(413, "The request body is larger than 2.5 MB."),
    "too_many_attempts": Code(429, "Too many invalid tokens from your address: wait 5 minutes."),
    "server_error": Code(500, "An unexpected error; it has been logged."),
    "busy": Code(503, "The database is busy: retry in a moment (`Retry-After`)."),
    # -- who may
    "forbidden": Code(403, "Not allowed to you."),
    "staff_only": Code(403, "Only facility staff (or, where stated, a tenant admin) may."),
    "technician_only": Code(403, "Only a lab technician or facility staff may."),
    "csrf_failed": Code(403, "A browser session's unsafe request without a valid CSRF token."),
    "not_authorized": Code(403, "The resource's policy does not let you book it."),
    "not_qualified": Code(403, "You hold no valid qualification for the machine at that time."),
    "tenant_suspended": Code(403, "Your company's account is suspended."),
    "not_found": Code(404, "No such object, or one you may not see (another tenant's)."),
    # -- the current state of things
    "conflict": Code(
        409,
        "The slot is taken (`conflicts` lists what is in the way), or the data changed "
        "meanwhile: reload and retry.",
    ),
    "series_conflict": Code(
        409,
        "The series was not booked: no occurrence could be, or one could not and all or "
        "nothing was asked (`refused` lists each refused occurrence with its code).",
    ),
    "invalid_state": Code(
        409, "The object's state does not allow this (e.g. a cancelled booking)."
    ),
    "check_in_closed": Code(409, "Check-in is open from 15 minutes before the start to the end."),
    "equipment_busy": Code(409, "The machine is in use."),
    "maintenance": Code(409, "The machine is out of service."),
    "no_booking": Code(409, "You have no booking of the machine covering now."),
    "controller_managed": Code(409, "The machine starts with a badge at its controller."),
    "not_to_check": Code(409, "The machine is not waiting for an after-use check."),
    "open_incidents": Code(409, "The machine has open incidents: close them first."),
    "booking_in_progress": Code(409, "A booking in progress is in the way (`booking_id`)."),
    "lockdown": Code(409, "The site or the door is in lockdown."),
    "controller_offline": Code(409, "The door's controller has not been heard from for 90 s."),
    "already_registered": Code(409, "This badge is registered already (or the visitor has one)."),
    "invalid_transition": Code(409, "The badge cannot go from its status to that one."),
    "inactive": Code(409, "The person is inactive: activate them first."),
    "already_signed_up": Code(409, "The person has chosen a password already."),
    "idempotency_key_in_use": Code(
        409, "A request with this `Idempotency-Key` is being answered: retry."
    ),
    "broker_unavailable": Code(503, "The MQTT broker did not take the command: retry."),
    # -- the request itself
    "invalid": Code(
        422,
        "Invalid input: `errors` names each field (also a body that is not JSON, or a value "
        "out of range).",
    ),
    "invalid_period": Code(422, "The end is not after the start."),
    "naive_time": Code(422, "A time without its time zone."),
    "in_the_past": Code(422, "The time is in the past."),
    "too_short": Code(422, "Shorter than the policy's minimum duration."),
    "too_long": Code(422, "Longer than the policy's maximum duration."),
    "not_aligned": Code(422, "The start or the end is not on the policy's slot step."),
    "too_late": Code(422, "Less notice than the policy's minimum."),
    "too_far_ahead": Code(422, "Beyond the policy's booking horizon."),
    "closed": Code(422, "A closure day (a public holiday, a building closure)."),
    "outside_opening_hours": Code(422, "Outside the resource's opening hours."),
    "overnight_not_allowed": Code(422, "The machine may not run unattended outside lab hours."),
    "over_capacity": Code(422, "More attendees than the room's capacity."),
    "unavailable": Code(422, "The resource is withdrawn from booking."),
    "quota_exceeded": Code(
        422, "Over the tenant's monthly quota (`quota_minutes`, `left_minutes`)."
    ),
    "slot_free": Code(422, "The slot is free: book it instead of queueing."),
    "idempotency_key_reused": Code(
        422, "This `Idempotency-Key` came with another request: use a new key."
    ),
    "offer_closed": Code(422, "The waitlist offer has expired or was taken."),
}


def status_of(code: str) -> int:
    return CODES[code].status


RULE = """\
Every error answer is JSON `{"detail": "...", "code": "..."}`; each code has one HTTP status,
listed below, and each operation of the OpenAPI document lists the codes it may answer.
A refusal of the request itself (a time outside the opening hours, too long, too far ahead,
over the quota) is a 422: another request may pass. A refusal of the caller (not qualified for
the machine, not allowed by the resource's policy, a suspended company) is a 403, like any
other permission: no other time would pass. A refusal by the current state of things (a slot
taken, a door in lockdown, a machine in use) is a 409: the same request may pass later."""


def document() -> str:
    """The rule and the table of codes, as docs/errors.md and the API's description give it."""
    rows = sorted(CODES.items(), key=lambda item: (item[1].status, item[0]))
    lines = [RULE, "", "| status | code | meaning |", "|---|---|---|"]
    lines += [f"| {c.status} | `{code}` | {c.meaning} |" for code, c in rows]
    return "\n".join(lines) + "\n"


class DomainError(Exception):
    """A refusal the caller can act on: a stable code (its HTTP status is in CODES), a
    readable detail, optional data answered along."""

    code = "error"

    def __init__(self, detail: str, code: str | None = None, **data):
        super().__init__(detail)
        self.detail = detail
        if code:
            self.code = code
        self.data = data

    @property
    def status(self) -> int:
        return status_of(self.code)


class NotFound(DomainError):
    """The object does not exist, or the caller may not know that it does."""

    code = "not_found"


class Forbidden(DomainError):
    code = "forbidden"


class Invalid(DomainError):
    code = "invalid"


class Conflict(DomainError):
    code = "conflict"


if __name__ == "__main__":
    print("# Error codes\n\n" + document(), end="")

"""Domain errors: each has a stable `code`; the API maps each class to an HTTP status once."""


class DomainError(Exception):
    """A refusal the caller can act on: a stable code, a readable detail, optional data."""

    status = 400
    code = "error"

    def __init__(self, detail: str, code: str | None = None, **data):
        super().__init__(detail)
        self.detail = detail
        if code:
            self.code = code
        self.data = data


class NotFound(DomainError):
    """The object does not exist, or the caller may not know that it does."""

    status = 404
    code = "not_found"


class Forbidden(DomainError):
    status = 403
    code = "forbidden"


class Invalid(DomainError):
    status = 422
    code = "invalid"


class Conflict(DomainError):
    status = 409
    code = "conflict"

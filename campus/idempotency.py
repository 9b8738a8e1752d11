"""Idempotent creation: the `Idempotency-Key` header of the API's creating operations.

Stripe's design. A client that got no answer (a timeout, a dropped connection, a server killed
mid-request) sends the same request again with the same key, and gets the first answer
instead of a second creation or a 409 against its own booking.

- A key is the caller's: the same key sent by two people is two keys.
- The answer (status, content type, body) of a successful creation is kept with the creation,
  in the same transaction: a request that dies half-way leaves neither, and its retry runs
  again. An error answer is not kept: nothing was created, and a retry runs again.
- The same key with another request (method, path or body) is a 422 `idempotency_key_reused`.
- Two requests with one key at once: the second waits for the first (the key's unique row),
  then gets its answer.
- Keys are forgotten after KEEP: `purge_expired`, one of the periodic jobs (bookings.jobs).

`@idempotent`, under an operation's `@router.post(...)`, is all an operation needs. Without
the header an operation runs as it always does. Inside the request's transaction the engine's
own transactions are savepoints, so its retries on a deadlock still work.
"""

import functools
import json
import re
from datetime import datetime, timedelta

from django.db import DatabaseError, IntegrityError, transaction
from django.http import HttpResponse
from django.utils import timezone
from django.utils.crypto import salted_hmac
from ninja.decorators import decorate_view
from ninja.utils import contribute_operation_callback

from campus.models import IdempotentRequest
from common.errors import Conflict, DomainError, Invalid

HEADER = "Idempotency-Key"
REPLAYED = "Idempotent-Replayed"
KEEP = timedelta(hours=24)
_KEY = re.compile(r"[!-~]{1,255}")  # visible ASCII: a UUID is the usual choice

PARAMETER = {
    "in": "header",
    "name": HEADER,
    "required": False,
    "description": "A key of your choice (a UUID) that makes this request safe to retry for "
    "24 hours: the same request with the same key gets the first answer again, with the "
    f"header `{REPLAYED}: true`, and creates nothing more. The same key with another "
    "request is a 422 `idempotency_key_reused`. Error answers are not kept.",
    "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[!-~]+$"},
}


class KeyReused(DomainError):
    code = "idempotency_key_reused"


def idempotent(view):
    """Let an operation take `Idempotency-Key` (and say so in the OpenAPI schema)."""

    @functools.wraps(view)
    def keyed(request, **values):
        key = request.headers.get(HEADER)
        if key is None:
            return view(request, **values)
        return _replay_or_claim(request, key) or view(request, **values)

    decorate_view(_in_one_transaction)(keyed)
    contribute_operation_callback(keyed, _document)
    return keyed


def _document(operation):
    extra = dict(operation.openapi_extra or {})
    extra["parameters"] = [*extra.get("parameters", []), PARAMETER]
    operation.openapi_extra = extra


def _in_one_transaction(run):
    """Around the whole operation (authentication, the view, its rendered answer): one
    transaction holding the creation and the answer kept for the key, or neither. An error
    at COMMIT is answered by the operation's API, as any other (busy, conflict…): `run` is
    the operation's own bound method (this is its only run decorator), which knows the API."""
    operation = run.__self__

    @functools.wraps(run)
    def whole(request, **kwargs):
        if HEADER not in request.headers:
            return run(request, **kwargs)
        try:
            with transaction.atomic():
                response = run(request, **kwargs)
                claim = getattr(request, "_idempotency_claim", None)
                if not 200 <= response.status_code < 300:
                    transaction.set_rollback(True)
                elif claim is not None:
                    claim.status = response.status_code
                    claim.content_type = response["Content-Type"]
                    claim.body = response.content
                    claim.save(update_fields=["status", "content_type", "body"])
        except DatabaseError as e:  # at COMMIT, or while keeping the answer
            return operation.api.on_exception(request, e)
        return response

    return whole


def _replay_or_claim(request, key: str) -> HttpResponse | None:
    """The kept answer for this key, or None once the key is claimed for this request."""
    if not _KEY.fullmatch(key):
        message = "must be 1 to 255 visible ASCII characters (a UUID, for example)"
        raise Invalid(f"{HEADER}: {message}.", errors=[{"field": HEADER, "message": message}])
    fingerprint = _fingerprint(request)
    now = timezone.now()
    rows = IdempotentRequest.objects.filter(person=request.auth, key=key)
    rows.filter(created_at__lte=now - KEEP).delete()
    kept = rows.first()
    if kept is None:
        try:
            # A savepoint: if a twin request holding this key commits first, the insert
            # (which waited for it) fails and this transaction goes on to read its answer.
            with transaction.atomic():
                claim = IdempotentRequest.objects.create(
                    person=request.auth, key=key, fingerprint=fingerprint, created_at=now
                )
        except IntegrityError:
            kept = rows.first()
            if kept is None:
                raise Conflict(
                    "A request with this Idempotency-Key was being answered; retry.",
                    code="idempotency_key_in_use",
                ) from None
        else:
            request._idempotency_claim = claim
            return None
    if kept.fingerprint != fingerprint:
        raise KeyReused(
            f"This {HEADER} was used for another request; use a new key for a new request."
        )
    response = HttpResponse(bytes(kept.body), status=kept.status, content_type=kept.content_type)
    response[REPLAYED] = "true"
    return response


def _fingerprint(request) -> str:
    """Which request a key was used for: method, path with query and body (JSON compared as
    data, so that the order of its keys does not matter), as a keyed hash."""
    try:
        body = json.dumps(json.loads(request.body or b"null"), sort_keys=True)
    except ValueError:
        body = request.body.decode("latin-1")
    message = f"{request.method}\n{request.get_full_path()}\n{body}"
    return salted_hmac("campus.idempotency", message, algorithm="sha256").hexdigest()


def purge_expired(now: datetime | None = None) -> int:
    """Forget the keys older than KEEP; safe to run anywhere at once (one DELETE)."""
    now = now or timezone.now()
    deleted, _ = IdempotentRequest.objects.filter(created_at__lte=now - KEEP).delete()
    return deleted

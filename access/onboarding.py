"""Bulk onboarding: tenants, people and their badges from one CSV file, all or nothing.

The file: UTF-8 (with or without a BOM), `;` or `,` between columns, a header row naming the
columns (any order, any case). One row per person; a row without an e-mail only creates its
tenant.

| column | |
|---|---|
| `tenant` | the tenant's name (required); created when no tenant has that name |
| `tier` | `member` or `non_member`: required for a new tenant |
| `contract_start` | `YYYY-MM-DD` or `DD/MM/YYYY`: required for a new tenant |
| `email` | the person's e-mail address |
| `first_name`, `last_name` | required with an e-mail |
| `phone` | optional |
| `language` | `fr` or `en` (default `fr`) |
| `tenant_admin` | `yes`/`no` (also `oui`/`non`, `1`/`0`, `true`/`false`; default no) |
| `badge_uid` | optional: the badge UID in hex, as the reader shows it; only its hash is kept |
| `badge_label` | optional: the number printed on the badge |

The rules are those of the API and the company pages, not a copy: a person is added by
`campus.people.add_person`, their badge registered by `access.badges.register_badge`
(`via="import"`). A row only ever creates a person (an e-mail already taken is an
error on its row) and a badge for that new person: it never changes nor badges someone who
exists. The whole file is imported in one transaction, row after row (so a row sees the
tenants and badges of the rows above it); any error, or a dry run, rolls all of it back. A
dry run therefore reports exactly what the import would do. Each person imported is invited
by e-mail to choose a password (`campus.invitations`), once the import has committed.
"""

import csv
import io
from dataclasses import dataclass, field
from datetime import date, datetime

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils.translation import gettext as _

from access.badges import register_badge
from access.models import Credential
from campus.models import Person, Tenant
from campus.people import add_person
from common.errors import DomainError

COLUMNS = [
    "tenant",
    "tier",
    "contract_start",
    "email",
    "first_name",
    "last_name",
    "phone",
    "language",
    "tenant_admin",
    "badge_uid",
    "badge_label",
]
REQUIRED_COLUMNS = ["tenant", "email", "first_name", "last_name"]
YES = {"yes", "oui", "1", "true", "y", "o", "x"}
NO = {"no", "non", "0", "false", "n", ""}
MAX_BYTES = 1_000_000

# model field → CSV column, for the models' validation errors
TENANT_COLUMNS = {"name": "tenant", "tier": "tier", "contract_start": "contract_start"}
PERSON_COLUMNS = {
    "email": "email",
    "first_name": "first_name",
    "last_name": "last_name",
    "phone": "phone",
    "language": "language",
    "tenant": "tenant",
    "is_tenant_admin": "tenant_admin",
}
BADGE_COLUMNS = {"uid_hash": "badge_uid", "label": "badge_label"}


@dataclass(frozen=True)
class RowError:
    row: int  # the line in the file: the header is 1, the first person 2
    column: str
    message: str


@dataclass
class ImportResult:
    rows: int = 0
    tenants: list[str] = field(default_factory=list)  # created
    people: int = 0
    badges: int = 0
    errors: list[RowError] = field(default_factory=list)
    committed: bool = False

    @property
    def ok(self) -> bool:
        return not self.errors


class FileRefused(Exception):
    """The file as a whole cannot be read (encoding, header)."""


def read_rows(data: bytes) -> list[tuple[int, dict]]:
    """(line number, {column: value}) for each non-empty row; FileRefused if unreadable."""
    if len(data) > MAX_BYTES:
        raise FileRefused(_("The file is larger than 1 MB: split it."))
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise FileRefused(
            _("The file is not UTF-8: save it as “CSV UTF-8” from your spreadsheet.")
        ) from None
    first_line = text.split("\n", 1)[0]
    delimiter = ";" if first_line.count(";") >= first_line.count(",") else ","
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    header = [h.strip().lower() for h in next(reader, [])]
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise FileRefused(
            _("Missing columns: %(columns)s. The first row must name the columns.")
            % {"columns": ", ".join(missing)}
        )
    unknown = [h for h in header if h and h not in COLUMNS]
    if unknown:
        raise FileRefused(_("Unknown columns: %(columns)s.") % {"columns": ", ".join(unknown)})
    rows = []
    for line, values in enumerate(reader, start=2):
        if not any(v.strip() for v in values):
            continue
        cells = {c: "" for c in COLUMNS}
        cells.update({h: v.strip() for h, v in zip(header, values, strict=False) if h})
        rows.append((line, cells))
    return rows


def parse_day(text: str) -> date:
    for pattern in ("%Y-%m-%d", "%d/%m/%Y"):
        try:
            return datetime.strptime(text, pattern).date()
        except ValueError:
            continue
    raise ValueError(text)


def _model_errors(line: int, error: ValidationError, columns: dict) -> list[RowError]:
    return [
        RowError(line, columns.get(name, ""), message)
        for name, messages in error.message_dict.items()
        for message in messages
    ]


def import_people(data: bytes, *, by: Person | None, commit: bool) -> ImportResult:
    """Check (and with `commit`, import) a file. `by` is who imports (None: the command line,
    run by an operator); their rights are checked row by row like the API's."""
    result = ImportResult()
    try:
        rows = read_rows(data)
    except FileRefused as e:
        result.errors.append(RowError(1, "", str(e)))
        return result
    result.rows = len(rows)
    if not rows:
        result.errors.append(RowError(1, "", _("The file has no row below its header.")))
        return result
    with transaction.atomic():
        for line, cells in rows:
            before = (len(result.tenants), result.people, result.badges)
            try:
                # A savepoint per row: after a database error the next rows are still checked.
                with transaction.atomic():
                    errors = _import_row(line, cells, by, result)
                    if errors:
                        raise _RowFailed(errors)
            except _RowFailed as failed:
                result.errors.extend(failed.errors)
            except IntegrityError:
                result.errors.append(
                    RowError(line, "", _("This conflicts with data saved meanwhile; retry."))
                )
            else:
                continue
            # The row's savepoint is rolled back: so are its counts.
            del result.tenants[before[0] :]
            result.people, result.badges = before[1], before[2]
        result.committed = commit and result.ok
        if not result.committed:
            transaction.set_rollback(True)
    return result


class _RowFailed(Exception):
    def __init__(self, errors: list[RowError]):
        self.errors = errors


def _import_row(line: int, cells: dict, by: Person | None, result: ImportResult):
    errors: list[RowError] = []
    tenant = _tenant(line, cells, errors, result)
    if not cells["email"]:
        if any(cells[c] for c in ("first_name", "last_name", "badge_uid")):
            errors.append(RowError(line, "email", _("Required for a person.")))
        return errors
    person = _person(line, cells, tenant, by, errors) if tenant else None
    if person is not None:
        result.people += 1
    if cells["badge_uid"]:
        _badge(line, cells, person, by, errors, result)
    return errors


def _tenant(line: int, cells: dict, errors: list, result: ImportResult) -> Tenant | None:
    name = cells["tenant"]
    if not name:
        errors.append(RowError(line, "tenant", _("Required.")))
        return None
    tenant = Tenant.objects.filter(name__iexact=name).first()
    if tenant is not None:
        return tenant
    for column in ("tier", "contract_start"):
        if not cells[column]:
            errors.append(RowError(line, column, _("Required for a new tenant.")))
    if errors:
        return None
    try:
        start = parse_day(cells["contract_start"])
    except ValueError:
        errors.append(RowError(line, "contract_start", _("Write the date as YYYY-MM-DD.")))
        return None
    tenant = Tenant(name=name, tier=cells["tier"].lower(), contract_start=start)
    try:
        tenant.full_clean()
    except ValidationError as e:
        errors.extend(_model_errors(line, e, TENANT_COLUMNS))
        return None
    tenant.save()
    result.tenants.append(tenant.name)
    return tenant


def _person(line, cells, tenant, by, errors) -> Person | None:
    admin = cells["tenant_admin"].lower()
    admin_ok = admin in YES | NO
    if not admin_ok:
        errors.append(RowError(line, "tenant_admin", _("Write yes or no.")))
    fields = {
        "email": cells["email"],
        "first_name": cells["first_name"],
        "last_name": cells["last_name"],
        "phone": cells["phone"],
        "language": cells["language"].lower() or "fr",
        "is_tenant_admin": admin in YES,
        "tenant_id": tenant.pk,
    }
    try:
        # Also when tenant_admin was unreadable: the row's other errors are reported at once,
        # and the row's error rolls its savepoint back, the person and invitation with it.
        person = add_person(by, fields)
    except ValidationError as e:
        errors.extend(_model_errors(line, e, PERSON_COLUMNS))
        return None
    except DomainError as e:
        errors.append(RowError(line, "", e.detail))
        return None
    return person if admin_ok else None


def _badge(line, cells, person, by, errors, result):
    try:
        # Checked first, also when the row's person failed: a bad UID is reported at once.
        Credential().register_uid(cells["badge_uid"])
    except DomainError as e:
        errors.append(RowError(line, "badge_uid", e.detail))
        return
    if person is None:
        return  # the row's person failed: the badge waits for a corrected file
    try:
        register_badge(
            by, cells["badge_uid"], holder_id=person.pk, label=cells["badge_label"], via="import"
        )
    except ValidationError as e:
        errors.extend(_model_errors(line, e, BADGE_COLUMNS))
        return
    except DomainError as e:
        errors.append(RowError(line, "", e.detail))
        return
    result.badges += 1

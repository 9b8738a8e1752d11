"""Bulk onboarding from a CSV file: all rows or none, the API's rules, a dry run that reports
each bad row; the staff page and `manage.py import_people` share the code."""

from unittest import mock

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command

from access import onboarding
from access.models import AuditEvent, Credential
from campus.models import Person, Tenant
from tests.portal.conftest import signed_in

GOOD = (
    "tenant;tier;contract_start;email;first_name;last_name;phone;language;tenant_admin;"
    "badge_uid;badge_label\n"
    "Initech;member;2026-01-01;Peter@Initech.test;Peter;Gibbons;;en;yes;04:A1:B2:C3;17\n"
    "Initech;;;milton@initech.test;Milton;Waddams;+33 2 41 00 00 00;;no;;\n"
    "Acme;;;dave@acme.test;Dave;Test;;;;0A0B0C0D;\n"
    "Umbrella;non_member;15/02/2026;;;;;;;;\n"
)
# line 3: a badge already in the file (line 2); line 4: Bob's e-mail; line 5: a new tenant
# without its tier; line 6: no last name and a UID that is not hex
BAD = (
    "tenant,tier,contract_start,email,first_name,last_name,tenant_admin,badge_uid\n"
    "Initech,member,2026-01-01,peter@initech.test,Peter,Gibbons,yes,04:A1:B2:C3\n"
    "Initech,,,milton@initech.test,Milton,Waddams,no,04A1B2C3\n"
    "Acme,,,bob@acme.test,Bobby,Test,no,\n"
    "Hooli,,2026-01-01,gavin@hooli.test,Gavin,Belson,no,\n"
    "Acme,,,erin@acme.test,Erin,,maybe,zz\n"
)


def errors_of(result):
    return [(e.row, e.column, e.message) for e in result.errors]


def test_a_valid_file_imports_every_row(sam, acme):
    result = onboarding.import_people(("\ufeff" + GOOD).encode(), by=sam, commit=True)
    assert result.ok and result.committed
    assert (result.rows, result.tenants, result.people, result.badges) == (
        4,
        ["Initech", "Umbrella"],
        3,
        2,
    )
    initech = Tenant.objects.get(name="Initech")
    assert (initech.tier, str(initech.contract_start)) == ("member", "2026-01-01")
    assert str(Tenant.objects.get(name="Umbrella").contract_start) == "2026-02-15"
    peter = Person.objects.get(email="peter@initech.test")  # lower-cased, like the API
    assert (peter.tenant, peter.is_tenant_admin, peter.language) == (initech, True, "en")
    assert not peter.has_usable_password()
    milton = Person.objects.get(email="milton@initech.test")
    assert (milton.language, milton.phone, milton.is_tenant_admin) == (
        "fr",
        "+33 2 41 00 00 00",
        False,
    )
    assert Person.objects.get(email="dave@acme.test").tenant == acme
    badge = Credential.objects.get(holder=peter)
    assert (badge.uid_hash, badge.uid_hint, badge.label) == (
        Credential.hash_uid("04A1B2C3"),
        "B2C3",
        "17",
    )
    issued = AuditEvent.objects.filter(kind="rights_change", result="issued")
    assert sorted((e.person.email, e.reason, e.actor) for e in issued) == [
        ("dave@acme.test", "import", sam),
        ("peter@initech.test", "import", sam),
    ]


def test_a_dry_run_reports_what_it_would_do_and_saves_nothing(sam, acme):
    result = onboarding.import_people(GOOD.encode(), by=sam, commit=False)
    assert result.ok and not result.committed
    assert (result.tenants, result.people, result.badges) == (["Initech", "Umbrella"], 3, 2)
    assert not Tenant.objects.filter(name="Initech").exists()
    assert not Credential.objects.exists() and not AuditEvent.objects.exists()


def test_bad_rows_are_each_reported_and_nothing_is_imported(sam, bob):
    result = onboarding.import_people(BAD.encode(), by=sam, commit=True)
    assert not result.committed
    assert errors_of(result) == [
        (3, "badge_uid", "This badge is already registered."),
        (4, "email", "Person with this E-mail address already exists."),
        (5, "tier", "Required for a new tenant."),
        (6, "tenant_admin", "Write yes or no."),
        (6, "last_name", "This field cannot be blank."),
        (6, "badge_uid", "A UID is whole bytes in hexadecimal."),
    ]
    assert not Tenant.objects.filter(name__in=["Initech", "Hooli"]).exists()
    assert not Person.objects.filter(email__endswith="initech.test").exists()
    assert not Credential.objects.exists()


def test_the_models_rules_apply_to_each_row(sam, acme):
    data = (
        "tenant;tier;contract_start;email;first_name;last_name;language\n"
        "Acme;;;not-an-email;Zed;Test;fr\n"
        "Acme;;;zoe@acme.test;Zoe;;de\n"
        "Initrode;gold;2026-01-01;;;;\n"
        "Initrode2;member;2026-31-01;;;;\n"
    )
    result = onboarding.import_people(data.encode(), by=sam, commit=False)
    assert errors_of(result) == [
        (2, "email", "Enter a valid email address."),
        (3, "last_name", "This field cannot be blank."),
        (3, "language", "Value 'de' is not a valid choice."),
        (4, "tier", "Value 'gold' is not a valid choice."),
        (5, "contract_start", "Write the date as YYYY-MM-DD."),
    ]


def test_a_tenant_admin_imports_only_into_their_tenant(alice, globex):
    data = "tenant;email;first_name;last_name\nGlobex;eve@globex.test;Eve;Test\n"
    result = onboarding.import_people(data.encode(), by=alice, commit=True)
    assert errors_of(result) == [(2, "", "A tenant admin manages only their own tenant's people.")]
    assert not Person.objects.filter(email="eve@globex.test").exists()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"name;mail\nx;y\n", "Missing columns: tenant, email, first_name, last_name."),
        (b"tenant;email;first_name;last_name;shoe_size\n", "Unknown columns: shoe_size."),
        ("tenant;email\né".encode("latin-1"), "The file is not UTF-8"),
        (b"tenant;email;first_name;last_name\n\n", "The file has no row below its header."),
    ],
)
def test_an_unreadable_file_is_one_error(sam, data, message):
    result = onboarding.import_people(data, by=sam, commit=True)
    assert len(result.errors) == 1 and result.errors[0].row == 1
    assert result.errors[0].message.startswith(message)


def test_the_page_is_for_staff_only(alice, bob, tina):
    for person in (alice, bob, tina):
        assert signed_in(person).get("/staff/import/").status_code == 403


def upload(text: str, name="people.csv"):
    return SimpleUploadedFile(name, text.encode(), content_type="text/csv")


def test_the_page_checks_a_bad_file_and_lists_each_error(sam, bob):
    client = signed_in(sam)
    with mock.patch.object(onboarding, "import_people", wraps=onboarding.import_people) as spy:
        response = client.post("/staff/import/", {"file": upload(BAD), "step": "check"})
    assert spy.call_args.kwargs == {"by": sam, "commit": False}
    assert response.status_code == 422
    body = response.content.decode()
    assert "6 errors: nothing was imported." in body
    assert (
        "<tr><td>4</td><td>email</td><td>Person with this E-mail address already exists.</td></tr>"
        in body
    )
    assert not Person.objects.filter(email="peter@initech.test").exists()


def test_the_page_imports_a_checked_file_in_a_second_step(sam, acme):
    client = signed_in(sam)
    response = client.post("/staff/import/", {"file": upload(GOOD), "step": "check"})
    assert response.status_code == 200
    assert "3 person(s), 2 badge(s) would be created" in response.content.decode()
    assert not Person.objects.filter(email="peter@initech.test").exists()
    content = response.context["content"]
    response = client.post("/staff/import/", {"content": content, "step": "import"}, follow=True)
    assert "Imported: 2 new tenant(s), 3 person(s), 2 badge(s)." in response.content.decode()
    assert Person.objects.filter(email__in=["peter@initech.test", "dave@acme.test"]).count() == 2


def test_importing_a_bad_file_directly_imports_nothing(sam, bob):
    response = signed_in(sam).post("/staff/import/", {"file": upload(BAD), "step": "import"})
    assert response.status_code == 422
    assert not Tenant.objects.filter(name="Initech").exists()


def test_the_page_asks_for_a_file(sam):
    response = signed_in(sam).post("/staff/import/", {"step": "check"})
    assert response.status_code == 422
    assert response.context["form"].errors["file"] == ["Choose a CSV file."]


def test_the_command_checks_then_imports(sam, acme, tmp_path, capsys):
    path = tmp_path / "people.csv"
    path.write_text(GOOD, encoding="utf-8")
    call_command("import_people", str(path))
    assert "would be imported from 4 row(s)" in capsys.readouterr().out
    assert not Tenant.objects.filter(name="Initech").exists()
    call_command("import_people", str(path), "--commit")
    assert "Imported 2 tenant(s), 3 person(s), 2 badge(s)" in capsys.readouterr().out
    assert Person.objects.filter(email="milton@initech.test").exists()
    event = AuditEvent.objects.filter(kind="rights_change").first()
    assert (event.reason, event.actor) == ("import", None)


def test_the_command_reports_bad_rows_and_imports_nothing(bob, tmp_path, capsys):
    path = tmp_path / "people.csv"
    path.write_text(BAD, encoding="utf-8")
    with pytest.raises(CommandError, match="6 error"):
        call_command("import_people", str(path), "--commit")
    assert "row 5, column tier: Required for a new tenant." in capsys.readouterr().err
    assert not Tenant.objects.filter(name="Initech").exists()

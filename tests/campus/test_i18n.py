"""French first, English available: the back-office renders in both, nothing left untranslated."""

import gettext
import re
from pathlib import Path

import pytest

from config.settings import BASE_DIR


def test_every_french_message_is_translated():
    po = Path(BASE_DIR, "locale/fr/LC_MESSAGES/django.po").read_text(encoding="utf-8")
    untranslated = re.findall(r'\nmsgid "(.+)"\nmsgstr ""\n(?!")', po)
    assert untranslated == []
    assert "#, fuzzy" not in po


def test_the_compiled_french_catalogue_matches_its_source():
    folder = Path(BASE_DIR, "locale/fr/LC_MESSAGES")
    po = (folder / "django.po").read_text(encoding="utf-8")
    pairs = dict(re.findall(r'\nmsgid "(.+)"\nmsgstr "(.+)"\n', po))
    with open(folder / "django.mo", "rb") as f:
        catalog = gettext.GNUTranslations(f)._catalog
    stale = {
        k: v
        for k, v in pairs.items()
        if catalog.get(k.replace('\\"', '"')) != v.replace('\\"', '"')
    }
    assert stale == {}, "run: uv run manage.py compilemessages"


@pytest.mark.parametrize(("language", "expected"), [("fr", "Entreprises"), ("en", "Tenants")])
def test_the_back_office_speaks_french_and_english(client, sam, language, expected):
    client.force_login(sam)
    client.cookies["django_language"] = language
    response = client.get("/admin/")
    assert response.status_code == 200
    assert expected in response.content.decode()

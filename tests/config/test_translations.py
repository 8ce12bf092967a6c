"""The catalogs are complete: every string marked in the code is in locale/pt_BR's .po files, translated,
not fuzzy, and well-formed (docs/i18n.md). A new untranslated string fails here."""

import shutil
import subprocess
from pathlib import Path

import pytest
from django.conf import settings

from config.translations import DOMAINS, TRANSLATED_LOCALES, catalog_path, check_catalogs, read_po


@pytest.fixture(scope="module")
def problems():
    return check_catalogs()


def test_every_marked_string_is_in_the_committed_catalogs(problems):
    """makemessages, run into a copy of locale/, adds nothing: the committed .po files are up to date."""
    assert not problems.missing, problems.report()
    assert not problems.stale, problems.report()


def test_every_string_has_a_brazilian_portuguese_translation(problems):
    assert not problems.untranslated, problems.report()


@pytest.mark.parametrize("domain", DOMAINS)
def test_catalogs_compile_with_matching_placeholders(domain, tmp_path):
    """msgfmt --check: a translation that drops or renames a %(name)s placeholder (a crash at render
    time) or breaks the plural forms fails."""
    for locale in TRANSLATED_LOCALES:
        po = catalog_path(settings.LOCALE_PATHS[0], locale, domain)
        result = subprocess.run(["msgfmt", "--check", "-o", str(tmp_path / "out.mo"), str(po)],
                                capture_output=True, text=True)
        assert result.returncode == 0, result.stderr


def test_the_check_catches_a_missing_an_untranslated_and_a_fuzzy_string(tmp_path):
    """The check itself, on a copy of the catalogs with one entry removed, one emptied, one marked fuzzy."""
    copy = tmp_path / "locale"
    shutil.copytree(settings.LOCALE_PATHS[0], copy, ignore=shutil.ignore_patterns("*.mo"))
    po = catalog_path(copy, "pt_BR", "django")
    text = po.read_text(encoding="utf-8")
    assert 'msgid "Assign to me"\nmsgstr "Atribuir a mim"\n' in text
    text = text.replace('msgid "Assign to me"\nmsgstr "Atribuir a mim"\n', "")
    text = text.replace('msgid "Resolve"\nmsgstr "Resolver"', 'msgid "Resolve"\nmsgstr ""')
    text = text.replace('msgid "Snooze"\nmsgstr "Adiar"', '#, fuzzy\nmsgid "Snooze"\nmsgstr "Adiar"')
    po.write_text(text, encoding="utf-8")
    problems = check_catalogs(copy)
    assert [m for m in problems.missing if "'Assign to me'" in m]
    assert [u for u in problems.untranslated if "'Resolve'" in u]
    assert [u for u in problems.untranslated if "'Snooze'" in u]


def test_the_po_reader_reads_plurals_contexts_and_multiline_strings():
    entries = {e.key: e for e in read_po(Path(settings.LOCALE_PATHS[0]) / "pt_BR" / "LC_MESSAGES" / "django.po")}
    plural = entries[(None, "%(n)s unread mention", "%(n)s unread mentions")]
    assert plural.msgstr == ["%(n)s menção não lida", "%(n)s menções não lidas"]
    assert entries[("token scope", "Read", None)].msgstr == ["Leitura"]
    mail = next(e for k, e in entries.items() if k[1].startswith("%(author)s mentioned you in a private note"))
    assert mail.msgid.endswith("Open it: %(path)s\n") and mail.msgstr[0].endswith("Abrir: %(path)s\n")

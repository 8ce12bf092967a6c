"""The project's message catalogs (docs/i18n.md): how they are extracted, and what "complete" means.

``manage.py translations`` (re)extracts every marked string into ``locale/<lang>/LC_MESSAGES/django.po``
and ``djangojs.po`` (Django's makemessages with the options below, the one place they are written) and
``--check`` says what is missing without writing. The test suite runs the check (tests/config/test_translations.py):
a string marked in the code but absent from the committed catalog, or present but untranslated or fuzzy,
fails it.

The .po reader here is a small one for the files makemessages writes (msgctxt, msgid, msgid_plural, msgstr,
msgstr[n], "#," flags, "#~" obsolete entries); no polib in the runtime.
"""

from __future__ import annotations

import ast
import os
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings

DOMAINS = ("django", "djangojs")
# Locales that must be complete (the default language, English, is the msgids themselves).
TRANSLATED_LOCALES = ("pt_BR",)
# What makemessages must not read: tests, benchmarks, tooling, generated files (dot-directories such as
# .venv are ignored by makemessages itself).
IGNORE = ["tests/*", "bench/*", "scripts/*", "docs/*", "staticfiles/*", "var/*", "locale/*"]


@dataclass
class Entry:
    msgid: str
    msgctxt: str | None = None
    msgid_plural: str | None = None
    msgstr: list[str] = field(default_factory=list)
    flags: set[str] = field(default_factory=set)

    @property
    def key(self) -> tuple[str | None, str, str | None]:
        return (self.msgctxt, self.msgid, self.msgid_plural)

    @property
    def translated(self) -> bool:
        return bool(self.msgstr) and all(s.strip() for s in self.msgstr) and "fuzzy" not in self.flags


def read_po(path: Path) -> list[Entry]:
    """The active entries of a .po file (the header and "#~" obsolete entries left out). Entries are
    separated by blank lines, as makemessages writes them."""
    entries: list[Entry] = []
    current: Entry | None = None
    last = None
    for raw in [*path.read_text(encoding="utf-8").splitlines(), ""]:
        line = raw.strip()
        if not line:
            if current is not None and current.msgid != "":
                entries.append(current)
            current, last = None, None
            continue
        if line.startswith("#~"):
            continue
        current = current or Entry(msgid="")
        if line.startswith("#,"):
            current.flags |= {flag.strip() for flag in line[2:].split(",")}
        elif line.startswith("#"):
            continue
        elif line.startswith('"'):  # a continuation of the last keyword's string
            if last == "msgstr":
                current.msgstr[-1] += ast.literal_eval(line)
            else:
                setattr(current, last, (getattr(current, last) or "") + ast.literal_eval(line))
        else:
            keyword, _sep, rest = line.partition(" ")
            value = ast.literal_eval(rest)
            if keyword.startswith("msgstr"):
                current.msgstr.append(value)
                last = "msgstr"
            elif keyword in ("msgctxt", "msgid", "msgid_plural"):
                setattr(current, keyword, value)
                last = keyword
    return entries


def catalog_path(locale_dir: Path, locale: str, domain: str) -> Path:
    return Path(locale_dir) / locale / "LC_MESSAGES" / f"{domain}.po"


@contextmanager
def _in_dir(path: Path):
    cwd = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(cwd)


def make_messages(locale_dir: Path, locales=TRANSLATED_LOCALES, verbosity: int = 0, source_dir: Path | None = None,
                  follow_symlinks: bool = False) -> None:
    """Django's makemessages for both domains (existing translations kept, obsolete entries dropped), reading
    ``source_dir`` (the project) and writing ``locale_dir``, which must be settings.LOCALE_PATHS[0] while it
    runs. makemessages writes a file's strings into the nearest ``locale`` directory above it, so
    ``source_dir`` must hold no ``locale`` of its own unless it is ``locale_dir``'s parent."""
    from django.core.management import call_command

    with _in_dir(source_dir or settings.BASE_DIR):
        for domain in DOMAINS:
            call_command("makemessages", locale=list(locales), domain=domain, ignore_patterns=IGNORE,
                         no_obsolete=True, add_location="file", symlinks=follow_symlinks, verbosity=verbosity)


def _source_view(base: Path, into: Path) -> Path:
    """A directory of symlinks to the project's top-level entries, without its ``locale`` (and dot-entries):
    makemessages run there writes into the LOCALE_PATHS it is given, not into the committed catalogs."""
    into.mkdir()
    for entry in Path(base).iterdir():
        if entry.name != "locale" and not entry.name.startswith("."):
            (into / entry.name).symlink_to(entry)
    return into


@dataclass
class Problems:
    missing: list[str] = field(default_factory=list)  # marked in the code, not in the committed catalog
    untranslated: list[str] = field(default_factory=list)  # in the catalog, with no (or a fuzzy) translation
    stale: list[str] = field(default_factory=list)  # in the catalog, no longer in the code

    def __bool__(self):
        return bool(self.missing or self.untranslated or self.stale)

    def report(self) -> str:
        parts = []
        for name, items in (("marked in the code but not in the catalog (run `manage.py translations`)", self.missing),
                            ("without a translation, or fuzzy", self.untranslated),
                            ("in the catalog but no longer in the code (run `manage.py translations`)", self.stale)):
            if items:
                parts.append(f"{len(items)} {name}:\n" + "\n".join(f"  {item}" for item in items))
        return "\n".join(parts)


def _label(locale: str, domain: str, entry: Entry) -> str:
    context = f" [{entry.msgctxt}]" if entry.msgctxt else ""
    return f"{locale}/{domain}.po: {entry.msgid!r}{context}"


def check_catalogs(locale_dir: Path | None = None) -> Problems:
    """Extract into a temporary copy of the committed catalogs and compare; the committed files are not
    touched. Also lists the committed entries that are untranslated or fuzzy."""
    from django.test.utils import override_settings

    committed_dir = Path(locale_dir or settings.LOCALE_PATHS[0])
    problems = Problems()
    with tempfile.TemporaryDirectory() as tmp:
        fresh_dir = Path(tmp) / "locale"
        if committed_dir.exists():
            shutil.copytree(committed_dir, fresh_dir)
        else:
            fresh_dir.mkdir()
        source = _source_view(settings.BASE_DIR, Path(tmp) / "src")
        with override_settings(LOCALE_PATHS=[fresh_dir]):
            make_messages(fresh_dir, source_dir=source, follow_symlinks=True)
        for locale in TRANSLATED_LOCALES:
            for domain in DOMAINS:
                committed_path = catalog_path(committed_dir, locale, domain)
                committed = {e.key: e for e in read_po(committed_path)} if committed_path.exists() else {}
                fresh = {e.key: e for e in read_po(catalog_path(fresh_dir, locale, domain))}
                problems.missing += [_label(locale, domain, e) for k, e in fresh.items() if k not in committed]
                problems.stale += [_label(locale, domain, e) for k, e in committed.items() if k not in fresh]
                problems.untranslated += [_label(locale, domain, e) for e in committed.values() if not e.translated]
    return problems


def compile_stale_catalogs(locale_dirs=None) -> list[Path]:
    """msgfmt every .po whose .mo is missing or older (what ``make compilemessages`` does, for a bare pytest
    run); returns the .mo files written."""
    import subprocess

    written = []
    for locale_dir in locale_dirs or settings.LOCALE_PATHS:
        for po in sorted(Path(locale_dir).glob("*/LC_MESSAGES/*.po")):
            mo = po.with_suffix(".mo")
            if not mo.exists() or mo.stat().st_mtime < po.stat().st_mtime:
                subprocess.run(["msgfmt", "--check-format", "-o", str(mo), str(po)], check=True)
                written.append(mo)
    return written

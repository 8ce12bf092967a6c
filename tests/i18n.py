"""Finding English on a page shown in Brazilian Portuguese (tests/browser/test_i18n_browser.py,
tests/inbox/test_i18n.py)."""

import re
from pathlib import Path

from django.conf import settings

from config.translations import read_po

PLACEHOLDER = re.compile(r"%\([a-z_]+\)[sdr]|%[sd]|<[^>]+>|&[a-z]+;")


def english_phrases() -> list[str]:
    """The English texts of the UI whose Brazilian Portuguese differs: every msgid, or for one with
    placeholders or markup its literal pieces of two words or more."""
    phrases = set()
    for domain in ("django", "djangojs"):
        for entry in read_po(Path(settings.LOCALE_PATHS[0]) / "pt_BR" / "LC_MESSAGES" / f"{domain}.po"):
            if entry.msgstr and entry.msgstr[0] == entry.msgid:
                continue  # the same in both languages ("OK", "Status", "Webhook")
            pieces = PLACEHOLDER.split(entry.msgid)
            for piece in pieces:
                piece = piece.strip(" .,:;·()“”\"'\n→?…")
                if len(pieces) > 1 and " " not in piece:
                    continue  # a lone word between placeholders ("The", "MB") is no sentence of its own
                if len(piece) >= 2 and re.search(r"[A-Za-z]{2}", piece) and not re.fullmatch(r"[dDlFMYHis:/ ,-]+", piece):
                    phrases.add(piece)
    return sorted(phrases, key=len, reverse=True)


_english: list[str] = []


def english_in(text: str) -> list[str]:
    """The English phrases found in ``text``, each with the text around it."""
    if not _english:
        _english.extend(english_phrases())
    found = []
    for phrase in _english:
        # A whole phrase: not part of a word, a hyphenated one or a dotted name ("conversation.status").
        match = re.search(rf"(?<![\w-])(?<!\w\.){re.escape(phrase)}(?![\w-]|\.\w)", text)
        if match:
            found.append(f"{phrase!r} in {text[max(0, match.start() - 40):match.end() + 40]!r}")
    return found

"""WhatsApp text formatting rendered safely: message text is untrusted, always.

The raw text is split into code spans (```mono```), links (http/https only) and plain runs. Every
run is HTML-escaped FIRST; formatting markers (*bold*, _italic_, ~strike~) are then matched on the
escaped text and wrapped in fixed tags. Nothing from the message ever becomes markup: the only tags
in the output are the ones written here.
"""

import re

from django.utils.html import escape, format_html
from django.utils.safestring import SafeString, mark_safe

MONO_RE = re.compile(r"```(.+?)```", re.S)
URL_RE = re.compile(r"\bhttps?://[^\s<>\"']+", re.I)
TRAILING_PUNCT = ".,;:!?)]}'\""

# WhatsApp's rule: a marker opens after start/space/punctuation, closes before end/space/punctuation,
# and the inner text neither starts nor ends with a space.
_INLINE = [
    ("*", "strong"),
    ("_", "em"),
    ("~", "s"),
]


def _inline_re(marker: str) -> re.Pattern:
    m = re.escape(marker)
    return re.compile(rf"(?<![\w{m}]){m}(?=\S)([^{m}\n]+?)(?<=\S){m}(?![\w{m}])")


INLINE_RES = [(marker, _inline_re(marker), tag) for marker, tag in _INLINE]


def _format_plain(text: str) -> str:
    html = str(escape(text))
    for marker, pattern, tag in INLINE_RES:
        if marker in html:  # most messages have no marker: three regex passes saved
            html = pattern.sub(rf"<{tag}>\1</{tag}>", html)
    return html


def _format_links(text: str) -> str:
    out = []
    pos = 0
    for match in URL_RE.finditer(text):
        url = match.group(0)
        trimmed = url.rstrip(TRAILING_PUNCT)
        end = match.start() + len(trimmed)
        out.append(_format_plain(text[pos:match.start()]))
        out.append(str(format_html('<a href="{}" target="_blank" rel="noopener noreferrer nofollow">{}</a>', trimmed, trimmed)))
        pos = end
    out.append(_format_plain(text[pos:]))
    return "".join(out)


def format_whatsapp(text: str | None) -> SafeString:
    """Untrusted WhatsApp text -> safe HTML (line breaks are kept by CSS white-space: pre-wrap)."""
    if not text:
        return mark_safe("")
    out = []
    pos = 0
    for match in MONO_RE.finditer(text):
        out.append(_format_links(text[pos:match.start()]))
        out.append(str(format_html("<code>{}</code>", match.group(1))))
        pos = match.end()
    out.append(_format_links(text[pos:]))
    return mark_safe("".join(out))  # noqa: S308 - every piece above is escaped or a fixed tag


PREVIEW_LEN = 200  # Conversation.last_message_preview's length
_TYPE_LABELS = {
    "image": "[image]", "video": "[video]", "audio": "[audio]", "document": "[document]", "sticker": "[sticker]",
    "contact": "[contact]", "location": "[location]", "unsupported": "[unsupported message]",
}


def message_preview(body: str, type_: str = "text", limit: int = PREVIEW_LEN) -> str:
    """The one-line plain-text preview of a message for the conversation list (escaped when rendered):
    a label first for what is not text ("[image] caption"), whitespace flattened, cut with an ellipsis.
    The one way every writer (sync, replies, demo data) makes it."""
    flat = " ".join((body or "").split())
    if type_ != "text":
        flat = f"{_TYPE_LABELS.get(type_, f'[{type_}]')} {flat}".strip()
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"

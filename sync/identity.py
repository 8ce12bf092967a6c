"""WhatsApp ids: JID normalization, phone numbers (E.164 via phonenumbers), filter reasons.

No models here. A phone-number JID is canonicalised so that both forms of a Brazilian mobile number
(with and without the ninth digit) give the same JID: the E.164 form that phonenumbers accepts as a
valid number. Device suffixes ("user:12@server") are dropped: a person, not a device.
"""

from __future__ import annotations

from functools import lru_cache

import phonenumbers

PN_SERVER = "s.whatsapp.net"
LID_SERVER = "lid"
GROUP_SERVER = "g.us"


@lru_cache(maxsize=65536)
def e164(digits: str) -> str:
    """E.164 ("+5511987654321") for the digits of a phone JID, or "" if it is not a phone number.

    Brazil (country code 55): a mobile number written without its ninth digit (55 DD XXXX-XXXX,
    first subscriber digit 6-9) is the same line as 55 DD 9XXXX-XXXX; phonenumbers only accepts the
    nine-digit form as valid, so the digit is inserted when that makes a valid number.
    """
    if not digits.isdigit():
        return ""
    try:
        num = phonenumbers.parse("+" + digits)
    except phonenumbers.NumberParseException:
        return ""
    if num.country_code == 55:
        national = str(num.national_number)
        if len(national) == 10 and national[2] in "6789":
            candidate = phonenumbers.parse(f"+55{national[:2]}9{national[2:]}")
            if phonenumbers.is_valid_number(candidate):
                num = candidate
    if not phonenumbers.is_possible_number(num):
        return ""
    return phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.E164)


@lru_cache(maxsize=262144)
def normalize_jid(raw: str) -> str:
    """Canonical JID string: lower-case server, no device/agent suffix, c.us -> s.whatsapp.net,
    phone numbers in their canonical (E.164) digits. "" stays ""."""
    if not raw:
        return ""
    raw = raw.strip()
    user, at, server = raw.rpartition("@")
    if not at:
        return raw.lower()
    server = server.lower()
    if server == "c.us":
        server = PN_SERVER
    user = user.split(":", 1)[0]
    if server in (PN_SERVER, LID_SERVER):
        user = user.split(".", 1)[0]  # "user.agent:device" forms
    if server == PN_SERVER:
        number = e164(user)
        if number:
            user = number[1:]
    return f"{user}@{server}"


def jid_server(jid: str) -> str:
    return jid.rpartition("@")[2]


_PN_SUFFIX, _LID_SUFFIX, _GROUP_SUFFIX = "@" + PN_SERVER, "@" + LID_SERVER, "@" + GROUP_SERVER


def is_pn(jid: str) -> bool:
    return jid.endswith(_PN_SUFFIX)


def is_lid(jid: str) -> bool:
    return jid.endswith(_LID_SUFFIX)


def is_group(jid: str) -> bool:
    return jid.endswith(_GROUP_SUFFIX)


def phone_of(jid: str) -> str:
    """E.164 of a phone-number JID ("" otherwise)."""
    return e164(jid.rpartition("@")[0]) if is_pn(jid) else ""


def skip_reason(chat_jid: str, filters) -> str:
    """Why a chat is filtered out for a connection ("" = keep). Exact server / JID match only.

    ``filters`` has the Connection's flags: skip_status_broadcasts, skip_newsletters,
    skip_broadcast_lists, skip_groups.
    """
    server = jid_server(chat_jid)
    if chat_jid == "status@broadcast":
        return "status_broadcast" if filters.skip_status_broadcasts else ""
    if server == "newsletter":
        return "newsletter" if filters.skip_newsletters else ""
    if server == "broadcast":
        return "broadcast_list" if filters.skip_broadcast_lists else ""
    if server == GROUP_SERVER:
        return "group" if filters.skip_groups else ""
    return ""

"""What error reports (the DEBUG page, error e-mails) may show: never a credential.

Django hides settings whose *name* looks secret (``PASSWORD``, ``SECRET_KEY``, ...). Ours keep
credentials inside URLs (DATABASE_URL, REDIS_URL, CELERY_BROKER_URL, WHATSMEOW_STORE, the channel
layer's hosts), which Django would print in full. ``SafeSettingsReporterFilter``:

* hides every setting, request.META entry and cookie whose name also matches ``*_URL``, ``*STORE*``,
  ``BROKER*``, ``*DSN*`` or ``LOCATION`` (besides Django's own list);
* masks the password of any URL (``scheme://user:password@host``) found in any other value, however
  deeply nested (the channel layer's ``hosts`` list, an OPTIONS dict, ...), and in the traceback's
  local variables, where a connection's parameters or a URL may sit;
* hides local variables whose *name* looks secret (``password``, ``conn_params``' password key, ...).

It is active whatever DEBUG says: DEBUG is exactly when the page is shown.
"""

import re

from django.views.debug import SafeExceptionReporterFilter

# scheme://userinfo@ : the userinfo part is where URLs carry credentials.
_URL_USERINFO = re.compile(r"(?P<scheme>\b[a-z][a-z0-9+.\-]*://)(?P<userinfo>[^/@\s'\"]+)@", re.IGNORECASE)
MASK = "********"


def mask_url_credentials(text: str) -> str:
    """``postgres://app:s3cret@db/x`` -> ``postgres://app:********@db/x``; a user-less token is masked whole."""

    def replace(match):
        user, sep, _ = match["userinfo"].partition(":")
        return f"{match['scheme']}{user}:{MASK}@" if sep else f"{match['scheme']}{MASK}@"

    return _URL_USERINFO.sub(replace, text)


class SafeSettingsReporterFilter(SafeExceptionReporterFilter):
    hidden_settings = re.compile(
        "API|AUTH|TOKEN|KEY|SECRET|PASS|SIGNATURE|HTTP_COOKIE|_URLS?$|STORE|BROKER|DSN|LOCATION",
        flags=re.IGNORECASE,
    )

    def cleanse_setting(self, key, value):
        cleansed = super().cleanse_setting(key, value)
        return self._mask(cleansed)

    def _mask(self, value):
        if isinstance(value, str):  # lazy strings (e.g. axes' AXES_USERNAME_FORM_FIELD) pass as str too
            return mask_url_credentials(str(value))
        if isinstance(value, dict):
            return {k: self._mask(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self._mask(v) for v in value]
        if isinstance(value, tuple):
            return tuple(self._mask(v) for v in value)
        return value

    def get_traceback_frame_variables(self, request, tb_frame):
        variables = super().get_traceback_frame_variables(request, tb_frame)
        # Django shows each value's repr; a dict or a str may hold a URL or a password.
        return [(name, self._cleanse_variable(name, value)) for name, value in variables]

    def _cleanse_variable(self, name, value):
        if isinstance(name, str) and name != "self" and self.hidden_settings.search(name):
            return self.cleansed_substitute
        if isinstance(value, dict | list | tuple):
            try:
                return self._mask(self.cleanse_setting("", value))
            except Exception:  # an odd object in a container: show its type, not its contents
                return f"<{type(value).__name__} hidden>"
        if isinstance(value, str):
            return mask_url_credentials(str(value))
        return value

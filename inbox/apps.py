from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class InboxConfig(AppConfig):
    name = "inbox"
    verbose_name = _("Inbox")

    def ready(self):
        from django.contrib.auth.signals import user_logged_out

        # Not business logic but the one hook every logout passes through (ours at /logout/, Django
        # admin's, a session flushed by auth.logout anywhere): the user's open sockets re-check at once,
        # and the one whose session just ended closes (inbox.consumers).
        user_logged_out.connect(_close_sockets_on_logout, dispatch_uid="inbox.close_sockets_on_logout")
        _load_catalogs()
        from config import lookups

        lookups.register()  # field__any=ids (config/lookups.py)


def _load_catalogs():
    """Every language's message catalogs, read once at start: a process's first pushed fragment, rendered
    in every language (inbox.events), must not pay for reading them inside a committing caller."""
    from django.conf import settings
    from django.utils import translation

    if settings.USE_I18N:
        for code, _name in settings.LANGUAGES:
            with translation.override(code):
                translation.gettext("Today")


def _close_sockets_on_logout(sender, request, user, **kwargs):
    if user is None:
        return
    from inbox.actions import do_notify_access_changed

    # Django sends this signal just before it flushes the session; a socket re-checking now would still
    # find the session and stay open. End the session first (logout's own flush then has nothing left).
    request.session.flush()
    do_notify_access_changed([user.pk])

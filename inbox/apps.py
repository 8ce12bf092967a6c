from django.apps import AppConfig


class InboxConfig(AppConfig):
    name = "inbox"
    verbose_name = "Inbox"

    def ready(self):
        from django.contrib.auth.signals import user_logged_out

        # Not business logic but the one hook every logout passes through (ours at /logout/, Django
        # admin's, a session flushed by auth.logout anywhere): the user's open sockets re-check at once,
        # and the one whose session just ended closes (inbox.consumers).
        user_logged_out.connect(_close_sockets_on_logout, dispatch_uid="inbox.close_sockets_on_logout")


def _close_sockets_on_logout(sender, request, user, **kwargs):
    if user is None:
        return
    from inbox.actions import do_notify_access_changed

    # Django sends this signal just before it flushes the session; a socket re-checking now would still
    # find the session and stay open. End the session first (logout's own flush then has nothing left).
    request.session.flush()
    do_notify_access_changed([user.pk])

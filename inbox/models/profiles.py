from django.conf import settings
from django.db import models
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from inbox.timezones import validate_time_zone


class UserProfile(models.Model):
    """A user's own settings, whatever tenant they work in (not tenant-owned: one person, many teams).

    ``time_zone`` overrides the tenant's zone for this user's pages (inbox.timezones); empty means
    "the tenant's". ``language`` is this user's UI language (inbox.languages); empty means "the browser's"."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="inbox_profile",
                                verbose_name=_("user"))
    time_zone = models.CharField(_("time zone"), max_length=64, blank=True, validators=[validate_time_zone],
                                 help_text=_("IANA name, e.g. America/Sao_Paulo; empty: the team's time zone"))
    language = models.CharField(_("language"), max_length=10, blank=True, choices=settings.LANGUAGES,
                                help_text=_("empty: the browser's language"))

    class Meta:
        verbose_name_plural = _("user profiles")
        verbose_name = _("user profile")

    def __str__(self):
        return gettext("profile of %(user)s") % {"user": self.user}

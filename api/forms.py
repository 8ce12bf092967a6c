"""Forms of the tenant's API page. Rules (the SSRF guard, known events) live in api.webhooks' check_*."""

from django import forms
from django.conf import settings
from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _

from api.models import ApiToken
from api.webhooks import EVENTS


class TokenForm(forms.Form):
    name = forms.CharField(label=_("Name"), max_length=100, help_text=_("what uses it, e.g. ERP"))
    scope = forms.ChoiceField(label=_("Scope"), choices=ApiToken.Scope.choices, initial=ApiToken.Scope.READ)


class EndpointForm(forms.Form):
    url = forms.URLField(max_length=500, assume_scheme="https", label="URL")
    events = forms.MultipleChoiceField(label=_("Events"),
                                       choices=[(name, format_lazy("{}: {}", name, _(what))) for name, what in EVENTS.items()],
                                       widget=forms.CheckboxSelectMultiple, initial=list(EVENTS))
    batch_size = forms.IntegerField(
        label=_("Events per request"), min_value=1, max_value=settings.WEBHOOK_BATCH_MAX, initial=1, required=False,
        help_text=_("1: one event object per request. More: a JSON array of up to this many events (docs/api.md)."))


class EnabledForm(forms.Form):
    enabled = forms.ChoiceField(choices=[("on", "on"), ("off", "off")])

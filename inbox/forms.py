"""Input parsing for the inbox pages. Forms parse and clean; rules live in actions (check_*)."""

from django import forms
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from connections.models import Connection
from inbox.models import Conversation
from inbox.selectors import MAX_ID, ConversationFilters, decode_cursor, parse_id


class BadParameters(Exception):
    """A request's parameters did not validate; ``inbox.resolver.tenant_view`` answers 400 with the form's
    errors (shown to the user), never a 500."""

    def __init__(self, form: forms.Form):
        super().__init__(form.errors.as_text())
        self.form = form


def cleaned(form: forms.Form) -> dict:
    """The form's cleaned data, or BadParameters."""
    if not form.is_valid():
        raise BadParameters(form)
    return form.cleaned_data


class CursorField(forms.CharField):
    """A page cursor (``inbox.selectors.encode_cursor``); the cleaned value stays the string."""

    default_error_messages = {"invalid": gettext_lazy("This link to more results is malformed or out of date; reload the page.")}

    def __init__(self, **kwargs):
        super().__init__(required=False, max_length=80, **kwargs)

    def validate(self, value):
        super().validate(value)
        if value and decode_cursor(value) is None:
            raise forms.ValidationError(self.error_messages["invalid"], code="invalid")


class FilterForm(forms.Form):
    status = forms.ChoiceField(choices=[(s, s) for s in ConversationFilters.STATUSES], required=False)
    scope = forms.ChoiceField(choices=[(s, s) for s in ConversationFilters.SCOPES], required=False)
    connection = forms.IntegerField(required=False, min_value=1, max_value=MAX_ID)
    q = forms.CharField(required=False, max_length=100, strip=True)
    label = forms.IntegerField(required=False, min_value=1, max_value=MAX_ID)
    cursor = CursorField()

    def filters(self) -> ConversationFilters:
        """The filters asked for (call after validation: ``cleaned(form)``); absent ones are the defaults."""
        data = self.cleaned_data
        return ConversationFilters(
            status=data.get("status") or "open",
            scope=data.get("scope") or "all",
            connection_id=data.get("connection"),
            q=data.get("q") or "",
            label_id=data.get("label"),
        )


class ThreadPageForm(forms.Form):
    before = CursorField()


class ReplyForm(forms.Form):
    # Length is checked by check_queue_reply so the refusal message is the same everywhere.
    body = forms.CharField(required=False, strip=False, widget=forms.Textarea(attrs={"rows": 2}))
    # Size and type are judged from the bytes by inbox.media.check_queue_media_reply (WhatsApp's limits).
    attachment = forms.FileField(required=False, allow_empty_file=True)


class NoteForm(forms.Form):
    # Length and content are checked by inbox.notes.check_add_note.
    body = forms.CharField(required=False, strip=False)


class AssignForm(forms.Form):
    """``assignee`` is "me", "" (unassign) or a user id; membership is checked by check_assign_conversation."""

    assignee = forms.CharField(required=False, max_length=20)

    def clean_assignee(self):
        value = self.cleaned_data["assignee"].strip()
        if value in ("", "me") or parse_id(value) is not None:
            return value
        raise forms.ValidationError(_("Choose an agent."))


class StatusForm(forms.Form):
    # Snoozing needs a time: inbox.views_tools.snooze, not this form.
    status = forms.ChoiceField(choices=[c for c in Conversation.Status.choices if c[0] != Conversation.Status.SNOOZED])


class SnoozeForm(forms.Form):
    """A preset (``in_1h``, ``tomorrow``, ``next_week``) or a local date and time (``until``, in the
    viewer's zone: the form is read inside the request's active zone)."""

    PRESETS = ("in_1h", "tomorrow", "next_week")
    preset = forms.ChoiceField(choices=[(p, p) for p in PRESETS], required=False)
    until = forms.DateTimeField(required=False, input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M"])

    def clean(self):
        data = super().clean()
        if not data.get("preset") and not data.get("until") and not self.errors:
            raise forms.ValidationError(_("Choose when the conversation should come back."))
        return data


class ConnectionActionForm(forms.Form):
    ACTIONS = {
        "pause": Connection.DesiredState.STOPPED,
        "resume": Connection.DesiredState.CONNECTED,
        "logout": Connection.DesiredState.LOGGED_OUT,
    }
    action = forms.ChoiceField(choices=[(a, a) for a in ACTIONS])


class PairForm(forms.Form):
    phone_number = forms.RegexField(
        regex=r"^\+?[0-9]{8,15}$", required=False, strip=True,
        error_messages={"invalid": gettext_lazy("Enter the number in international format, digits only (e.g. +5511987654321).")},
    )


class AlertEmailsForm(forms.Form):
    enabled = forms.ChoiceField(choices=[("on", "on"), ("off", "off")],
                                error_messages={"invalid_choice": gettext_lazy("Choose on or off for alert e-mails.")})


class AlertWebhookForm(forms.Form):
    url = forms.URLField(required=False, max_length=500, assume_scheme="https",
                         error_messages={"invalid": gettext_lazy(
                             "Enter a full http:// or https:// URL, or leave it empty to stop.")})

    def clean_url(self):
        from inbox.outbound import RefusedURL, check_public_url

        url = self.cleaned_data["url"]
        if url:
            try:
                check_public_url(url)
            except RefusedURL as exc:
                raise forms.ValidationError(_("This URL cannot receive alerts: %(reason)s.") % {"reason": exc}) from None
        return url


class AddNumberForm(forms.Form):
    name = forms.CharField(label=gettext_lazy("Name"), max_length=120, strip=True,
                           error_messages={"required": gettext_lazy("Give the number a name.")})
    transport = forms.ChoiceField(label=gettext_lazy("Transport"), choices=[])

    def __init__(self, *args, **kwargs):
        from django.conf import settings

        super().__init__(*args, **kwargs)
        allowed = [t for t in Connection.Transport if t.value in settings.NUMBER_TRANSPORTS]
        self.fields["transport"].choices = [(t.value, t.label) for t in allowed]
        self.fields["transport"].error_messages["invalid_choice"] = (
            _("Choose one of: %(transports)s.") % {"transports": ", ".join(str(t.label) for t in allowed)})
        if allowed:
            self.fields["transport"].initial = allowed[0].value


class RenameNumberForm(forms.Form):
    name = forms.CharField(max_length=120, strip=True, error_messages={"required": gettext_lazy("Give the number a name.")})


class NumberFiltersForm(forms.Form):
    skip_status_broadcasts = forms.BooleanField(required=False, label=gettext_lazy("Skip status updates (status@broadcast)"))
    skip_newsletters = forms.BooleanField(required=False, label=gettext_lazy("Skip newsletters (@newsletter)"))
    skip_broadcast_lists = forms.BooleanField(required=False, label=gettext_lazy("Skip broadcast lists (@broadcast)"))
    skip_groups = forms.BooleanField(required=False, label=gettext_lazy("Skip groups (@g.us)"))
    replay = forms.BooleanField(required=False, label=gettext_lazy("Replay the journal with the new filters"))


class DeleteNumberForm(forms.Form):
    """Deleting keeps the history; purging it needs the number's name typed exactly."""

    purge = forms.BooleanField(required=False)
    confirm = forms.CharField(required=False, strip=True, max_length=120)

    def __init__(self, *args, connection=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.connection = connection

    def clean(self):
        data = super().clean()
        if data.get("purge") and data.get("confirm") != self.connection.name:
            self.add_error("confirm", _("To delete the history too, type the number's name exactly: %(name)s")
                           % {"name": self.connection.name})
        return data


class DeleteWorkspaceForm(forms.Form):
    """Deleting a workspace archives it (its members lose it, nothing is lost); with ``purge`` its data is
    deleted for good. Either way its slug is typed exactly: one click must not lock a whole team out."""

    purge = forms.BooleanField(required=False)
    confirm = forms.CharField(required=False, strip=True, max_length=120)

    def __init__(self, *args, tenant=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.tenant = tenant

    def clean(self):
        data = super().clean()
        if data.get("confirm") != self.tenant.slug:
            self.add_error("confirm", _("Nothing was deleted: to delete this workspace, type its slug exactly: %(slug)s")
                           % {"slug": self.tenant.slug})
        return data


class AddMemberForm(forms.Form):
    username = forms.RegexField(label=gettext_lazy("Username"), regex=r"^[\w.@+-]{3,150}$", max_length=150,
                                error_messages={"invalid": gettext_lazy("3-150 letters, digits and @ . + - _ only.")})
    email = forms.EmailField(label=gettext_lazy("E-mail"))
    role = forms.ChoiceField(label=gettext_lazy("Role"),
                             choices=[("agent", gettext_lazy("Agent")), ("admin", gettext_lazy("Admin")),
                                      ("owner", gettext_lazy("Owner"))])
    password = forms.CharField(label=gettext_lazy("Password"), min_length=10, max_length=128, strip=False,
                               widget=forms.PasswordInput,
                               help_text=gettext_lazy("Their first password; they can change it later."))

    def clean_username(self):
        from django.contrib.auth import get_user_model

        username = self.cleaned_data["username"]
        if get_user_model().objects.filter(username__iexact=username).exists():
            raise forms.ValidationError(_("That username is taken; choose another."))
        return username

    def clean_password(self):
        from django.contrib.auth.password_validation import validate_password

        password = self.cleaned_data["password"]
        validate_password(password)
        return password


class MemberRoleForm(forms.Form):
    role = forms.ChoiceField(choices=[("agent", gettext_lazy("Agent")), ("admin", gettext_lazy("Admin")),
                                      ("owner", gettext_lazy("Owner"))],
                             error_messages={"invalid_choice": gettext_lazy("Choose agent, admin or owner.")})


class ChatExportForm(forms.Form):
    """The phone's "Export chat" file for a conversation (sync/chat_import.py)."""

    file = forms.FileField()
    me = forms.CharField(max_length=255, required=False, strip=True)
    date_order = forms.ChoiceField(choices=[("", gettext_lazy("Find out from the file")),
                                            ("dmy", gettext_lazy("Day first (31/12)")),
                                            ("mdy", gettext_lazy("Month first (12/31)")),
                                            ("ymd", gettext_lazy("Year first"))], required=False)
    timezone = forms.CharField(max_length=64, required=False, strip=True)

    def clean_file(self):
        from django.conf import settings

        upload = self.cleaned_data["file"]
        if upload.size > settings.CHAT_EXPORT_MAX_BYTES:
            raise forms.ValidationError(_("The file is larger than %(mb)s MB.")
                                        % {"mb": settings.CHAT_EXPORT_MAX_BYTES // 1_000_000})
        return upload

    def clean_timezone(self):
        import zoneinfo

        from django.conf import settings

        name = self.cleaned_data["timezone"] or settings.TIME_ZONE
        try:
            return zoneinfo.ZoneInfo(name)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
            raise forms.ValidationError(_("Unknown time zone %(name)r (e.g. America/Sao_Paulo).") % {"name": name}) from exc

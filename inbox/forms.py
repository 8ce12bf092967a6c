"""Input parsing for the inbox pages. Forms parse and clean; rules live in actions (check_*)."""

from django import forms

from connections.models import Connection
from inbox.models import Conversation
from inbox.selectors import ConversationFilters


class FilterForm(forms.Form):
    status = forms.ChoiceField(choices=[(s, s) for s in ConversationFilters.STATUSES], required=False)
    scope = forms.ChoiceField(choices=[(s, s) for s in ConversationFilters.SCOPES], required=False)
    connection = forms.IntegerField(required=False, min_value=1)
    q = forms.CharField(required=False, max_length=100, strip=True)
    cursor = forms.CharField(required=False, max_length=80)

    def filters(self) -> ConversationFilters:
        """The filters asked for; anything invalid falls back to the default (the inbox still loads)."""
        data = self.cleaned_data if self.is_valid() else {}
        return ConversationFilters(
            status=data.get("status") or "open",
            scope=data.get("scope") or "all",
            connection_id=data.get("connection"),
            q=data.get("q") or "",
        )


class ReplyForm(forms.Form):
    # Length is checked by check_queue_reply so the refusal message is the same everywhere.
    body = forms.CharField(required=False, strip=False, widget=forms.Textarea(attrs={"rows": 2}))


class AssignForm(forms.Form):
    """``assignee`` is "me", "" (unassign) or a user id; membership is checked by check_assign_conversation."""

    assignee = forms.CharField(required=False, max_length=20)

    def clean_assignee(self):
        value = self.cleaned_data["assignee"].strip()
        if value in ("", "me") or value.isdigit():
            return value
        raise forms.ValidationError("Choose an agent.")


class StatusForm(forms.Form):
    status = forms.ChoiceField(choices=Conversation.Status.choices)


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
        error_messages={"invalid": "Enter the number in international format, digits only (e.g. +5511987654321)."},
    )

"""CSV exports of the Django admin: one writer for every app's "Export selected as CSV" action.

Cells are neutralised against formula injection (CSV injection): a spreadsheet that opens the file
evaluates a cell starting with ``=``, ``+``, ``-`` or ``@`` (and a tab or carriage return before
one) as a formula, so a customer's WhatsApp name or message ``=HYPERLINK("http://evil", "x")`` would
run in the platform admin's spreadsheet. Such text cells get a leading single quote, which spreadsheets
show as text. Numbers, dates and booleans are written as they are (they cannot carry a formula).
The full-width forms (``＝＋－＠``) are included: some spreadsheet locales read them as the ASCII ones.
"""

import csv
from datetime import date, datetime
from decimal import Decimal

from django.http import HttpResponse
from django.utils import timezone

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20")


def neutralise_cell(value):
    """The value to write in a CSV cell: text that a spreadsheet would read as a formula gets a "'"."""
    if value is None:
        return ""
    if isinstance(value, bool | int | float | Decimal | date | datetime):
        return value
    text = str(value)
    return "'" + text if text.startswith(FORMULA_PREFIXES) else text


def csv_response(name: str, header: list[str], rows) -> HttpResponse:
    """An attachment ``<name>-<timestamp>.csv`` with the header and the rows, every cell neutralised."""
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{name}-{timezone.now():%Y%m%d-%H%M%S}.csv"'
    writer = csv.writer(response)
    writer.writerow([neutralise_cell(h) for h in header])
    for row in rows:
        writer.writerow([neutralise_cell(v) for v in row])
    return response


def export_columns(modeladmin) -> list:
    """``export_fields`` of the ModelAdmin if it has them, else its changelist's named columns.

    A ModelAdmin with ``export_fields`` that name relations lists them in ``export_select_related``
    (one query for the whole export, not one per row)."""
    fields = getattr(modeladmin, "export_fields", None)
    if fields is None:
        fields = [f for f in modeladmin.list_display if isinstance(f, str) and f != "__str__"]
    return list(fields)


def _cell(obj, field):
    value = getattr(obj, field, "")
    return value() if callable(value) else value


def export_as_csv(modeladmin, request, queryset):
    """Export the selected rows (``export_fields``, or the changelist's columns) as CSV."""
    fields = export_columns(modeladmin)
    related = getattr(modeladmin, "export_select_related", modeladmin.list_select_related)
    rows = queryset.select_related(*related).iterator(chunk_size=2000)
    return csv_response(modeladmin.model._meta.model_name, fields, ([_cell(obj, f) for f in fields] for obj in rows))


export_as_csv.short_description = "Export selected as CSV"

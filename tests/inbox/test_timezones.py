"""Times, day separators and "Yesterday" in the viewer's zone: the user's own, else the tenant's."""

import zoneinfo
from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse
from django.utils import timezone, translation

from inbox.models import Tenant, UserProfile
from inbox.templatetags.inbox_tags import day_label, day_label_at, short_time_at, stamp
from inbox.timezones import default_tenant_time_zone, is_time_zone, tenant_time_zone, viewer_time_zone
from tests.factories import ConversationFactory, MessageFactory

pytestmark = pytest.mark.django_db

SAO_PAULO = zoneinfo.ZoneInfo("America/Sao_Paulo")  # UTC-3 all year since 2019: no DST
KOLKATA = zoneinfo.ZoneInfo("Asia/Kolkata")  # UTC+5:30, never DST


def at(*args):
    return datetime(*args, tzinfo=UTC)


@pytest.fixture(autouse=True)
def english():
    """The labels below are English: a language a page request of an earlier test activated must not leak in."""
    with translation.override("en"):
        yield


@pytest.mark.parametrize(("zone", "expected"), [
    # 02:30 UTC on the 10th is 23:30 on the 9th in São Paulo, 08:00 on the 10th in Kolkata.
    (SAO_PAULO, "Yesterday"), (KOLKATA, "Today"), (UTC, "Today"),
])
def test_day_label_just_after_midnight_utc(zone, expected):
    now = at(2026, 1, 10, 12, 0)
    with timezone.override(zone):
        assert day_label_at(at(2026, 1, 10, 2, 30), now) == expected


def test_day_label_around_sao_paulo_midnight():
    with timezone.override(SAO_PAULO):
        now = at(2026, 1, 10, 3, 0)  # 00:00 on the 10th in São Paulo
        assert day_label_at(at(2026, 1, 10, 2, 59), now) == "Yesterday"  # 23:59 on the 9th
        assert day_label_at(at(2026, 1, 10, 3, 0), now) == "Today"
        assert day_label_at(at(2026, 1, 9, 2, 59), now) == "Thursday, 08 January 2026"
        assert short_time_at(at(2026, 1, 10, 3, 5), now) == "00:05"
        assert short_time_at(at(2026, 1, 10, 2, 55), now) == "Fri"
    with timezone.override(KOLKATA):
        now = at(2026, 1, 9, 18, 30)  # 00:00 on the 10th in Kolkata
        assert day_label_at(at(2026, 1, 9, 18, 29), now) == "Yesterday"
        assert day_label_at(at(2026, 1, 9, 18, 30), now) == "Today"
        assert short_time_at(at(2026, 1, 9, 18, 45), now) == "00:15"


def test_zone_resolution(acme, acme_agent, settings):
    settings.TENANT_DEFAULT_TIME_ZONE = "UTC"
    assert default_tenant_time_zone("pt-br") == "America/Sao_Paulo"
    assert default_tenant_time_zone("en-us") == "UTC"
    assert tenant_time_zone(acme) == "UTC"
    Tenant.objects.filter(pk=acme.pk).update(time_zone="America/Sao_Paulo")
    acme.refresh_from_db()
    assert viewer_time_zone(acme, acme_agent) == "America/Sao_Paulo"
    UserProfile.objects.create(user=acme_agent, time_zone="Asia/Kolkata")
    acme_agent.refresh_from_db()
    assert viewer_time_zone(acme, acme_agent) == "Asia/Kolkata"
    assert not is_time_zone("Mars/Olympus") and not is_time_zone("../etc/passwd") and not is_time_zone("")


def _thread(client, conv):
    return client.get(reverse("conversation", args=[conv.tenant.slug, conv.pk])).content.decode()


def test_thread_days_and_times_in_the_tenant_zone_then_the_users(client, acme, acme_agent, acme_connection):
    conv = ConversationFactory(connection=acme_connection)
    MessageFactory(conversation=conv, sent_at=at(2026, 1, 10, 2, 30), body="late evening in Brazil")
    client.force_login(acme_agent)

    html = _thread(client, conv)  # tenant zone: the default (UTC in the tests)
    assert 'data-day="2026-01-10"' in html and ">02:30</time>" in html

    Tenant.objects.filter(pk=acme.pk).update(time_zone="America/Sao_Paulo")
    html = _thread(client, conv)
    assert 'data-day="2026-01-09"' in html and ">23:30</time>" in html
    assert "Friday, 09 January 2026" in html  # the day separator
    assert 'data-tz="America/Sao_Paulo"' in html  # what live.js formats pushed fragments in

    UserProfile.objects.create(user=acme_agent, time_zone="Asia/Kolkata")  # the user's own zone wins
    html = _thread(client, conv)
    assert 'data-day="2026-01-10"' in html and ">08:00</time>" in html
    assert 'data-tz="Asia/Kolkata"' in html


def test_zone_does_not_leak_between_requests(client, acme, acme_agent, acme_connection):
    Tenant.objects.filter(pk=acme.pk).update(time_zone="America/Sao_Paulo")
    client.force_login(acme_agent)
    assert client.get(reverse("inbox", args=["acme"])).status_code == 200
    assert timezone.get_current_timezone_name() == timezone.get_default_timezone_name()


def test_profile_lookup_costs_no_extra_query(client, acme, acme_agent, acme_connection, django_assert_num_queries):
    """The user's profile comes with the membership (inbox.access.access_tenant): the thread pages'
    query counts (tests/inbox/test_pages.py) are those of before time zones."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    conv = ConversationFactory(connection=acme_connection)
    client.force_login(acme_agent)
    with CaptureQueriesContext(connection) as without_profile:
        _thread(client, conv)
    UserProfile.objects.create(user=acme_agent, time_zone="Asia/Kolkata")
    with CaptureQueriesContext(connection) as with_profile:
        _thread(client, conv)
    assert len(with_profile) == len(without_profile)
    assert not any("inbox_userprofile" in q["sql"] and "membership" not in q["sql"] for q in with_profile.captured_queries)


def test_preferences_page_sets_the_users_and_the_teams_zone(client, acme, acme_agent, acme_owner):
    url = reverse("preferences", args=["acme"])
    client.force_login(acme_agent)
    assert client.post(url, {"user_time_zone": "Asia/Kolkata", "tenant_time_zone": "Asia/Tokyo"}).status_code == 302
    acme.refresh_from_db()
    assert UserProfile.objects.get(user=acme_agent).time_zone == "Asia/Kolkata"
    assert acme.time_zone == ""  # an agent cannot change the team's zone
    assert 'data-tz="Asia/Kolkata"' in client.get(url).content.decode()
    assert client.post(url, {"user_time_zone": "Mars/Olympus"}).status_code == 422
    client.force_login(acme_owner)
    assert client.post(url, {"user_time_zone": "", "tenant_time_zone": "America/Sao_Paulo"}).status_code == 302
    acme.refresh_from_db()
    assert acme.time_zone == "America/Sao_Paulo"
    assert 'data-tz="America/Sao_Paulo"' in client.get(reverse("inbox", args=["acme"])).content.decode()


def test_a_thread_stamp_is_the_time_in_the_viewers_zone_and_language():
    """``stamp`` (the thread's times worked out once per item) prints what the date filters printed."""
    with timezone.override(SAO_PAULO):
        s = stamp(at(2026, 1, 10, 2, 30))
        assert (s.day, s.iso, s.hm) == ("2026-01-09", "2026-01-09T23:30:00-03:00", "23:30")
    with timezone.override(KOLKATA):
        s = stamp(at(2026, 1, 10, 2, 30))
        assert (s.day, s.iso, s.hm) == ("2026-01-10", "2026-01-10T08:00:00+05:30", "08:00")
    yesterday, long_ago = timezone.now() - timedelta(days=1), at(2026, 1, 9, 12, 0)
    # Day labels are cached per day and language: each language gets its own.
    for language, expected in (("en", "Yesterday"), ("pt-br", "Ontem"), ("en", "Yesterday")):
        with translation.override(language):
            assert stamp(yesterday).day_label == expected == day_label(yesterday)
            assert stamp(long_ago).day_label == day_label(long_ago)
    with translation.override("pt-br"):
        assert stamp(long_ago).day_label == "Sexta-feira, 09 de Janeiro de 2026"

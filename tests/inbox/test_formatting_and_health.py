import pytest
from django.urls import reverse

from inbox.formatting import format_whatsapp, message_preview


@pytest.mark.smoke
@pytest.mark.parametrize(
    "text, html",
    [
        ("<img src=x onerror=alert(1)>", "&lt;img src=x onerror=alert(1)&gt;"),
        ("*bold* _italic_ ~gone~", "<strong>bold</strong> <em>italic</em> <s>gone</s>"),
        ("```x = *y*```", "<code>x = *y*</code>"),
        ("```<b>```", "<code>&lt;b&gt;</code>"),
        ("2*3*4 and snake_case_name", "2*3*4 and snake_case_name"),
        ("* not bold *", "* not bold *"),
        ("*<i>x</i>*", "<strong>&lt;i&gt;x&lt;/i&gt;</strong>"),
        ("go to https://ex.com/a_b_c?x=1&y=2.", 'go to <a href="https://ex.com/a_b_c?x=1&amp;y=2" target="_blank" '
                                                'rel="noopener noreferrer nofollow">https://ex.com/a_b_c?x=1&amp;y=2</a>.'),
        ('http://x.y/"onmouseover="alert(1)', '<a href="http://x.y/" target="_blank" rel="noopener noreferrer nofollow">'
                                              'http://x.y/</a>&quot;onmouseover=&quot;alert(1)'),
        ("javascript:alert(1) ftp://x data:text/html,hi", "javascript:alert(1) ftp://x data:text/html,hi"),
        ("", ""),
    ],
)
def test_whatsapp_formatting_is_safe(text, html):
    assert str(format_whatsapp(text)) == html


def test_preview_is_one_line_and_bounded():
    assert message_preview("a\n\n b   c") == "a b c"
    assert message_preview("x" * 300, limit=120) == "x" * 119 + "…"
    assert message_preview("look", "image") == "[image] look" and message_preview("", "sticker") == "[sticker]"


@pytest.mark.smoke
@pytest.mark.django_db
def test_health_reports_database_and_redis(client, settings):
    settings.HEALTH_TOKEN = ""
    ok = client.get(reverse("health"))
    assert ok.status_code == 200 and ok.json() == {"status": "ok", "checks": {"database": "ok", "redis": "ok"}}
    settings.HEALTH_TOKEN = "s3cret"
    assert client.get(reverse("health")).json() == {"status": "ok"}  # no details without the token
    assert client.get(reverse("health"), HTTP_AUTHORIZATION="Bearer wrong").json() == {"status": "ok"}
    assert client.get(reverse("health"), HTTP_AUTHORIZATION="Bearer s3cret").json()["checks"]["redis"] == "ok"
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    down = client.get(reverse("health"), HTTP_AUTHORIZATION="Bearer s3cret")
    assert down.status_code == 503
    assert down.json()["status"] == "error" and down.json()["checks"]["redis"].startswith("error")


@pytest.mark.django_db
def test_health_token_is_compared_in_constant_time_and_any_header_is_safe(client, settings, monkeypatch):
    import hmac

    settings.HEALTH_TOKEN = "s3cret"
    compared = []
    real = hmac.compare_digest
    monkeypatch.setattr(hmac, "compare_digest", lambda a, b: compared.append((a, b)) or real(a, b))
    assert client.get(reverse("health"), HTTP_AUTHORIZATION="Bearer s3cret").json()["checks"]["database"] == "ok"
    assert compared == [(b"Bearer s3cret", b"Bearer s3cret")]
    # A header compare_digest would refuse as a str (non-ASCII) is just a wrong token, not a 500.
    odd = client.get(reverse("health"), HTTP_AUTHORIZATION="Bearer s\u00e9cret\u00b2")
    assert odd.status_code == 200 and odd.json() == {"status": "ok"}
    assert client.get(reverse("health"), HTTP_AUTHORIZATION="Bearer s3cre").json() == {"status": "ok"}

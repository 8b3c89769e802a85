"""services/renderer/tracking.py and its use in render(): link rewriting, the open
pixel, List-Unsubscribe, per-message and default tracking, signed_url()."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from services.renderer.catalog import TemplateCatalog
from services.renderer.render import render, reuse
from services.renderer.tracking import (
    Tracking,
    add_open_pixel,
    rewrite_links,
    unsubscribe_headers,
)
from shared.events import Accepted, Envelope, Rendered, Track
from shared.mailbox import Mailbox
from shared.paths import TEMPLATES_DIR
from shared.tokens import (
    KeyRing,
    read_click,
    read_open,
    read_unsubscribe,
    verify_action_token,
)

KEYS = KeyRing(["unit-test-key-0123456789"])
PUBLIC = "https://links.example.com"
CLICK = re.compile(r'href="https://links\.example\.com/t/c/([A-Za-z0-9_.-]+)"')


def _rewrite(html: str) -> str:
    return rewrite_links(html, "msg-1", public_url=PUBLIC, keys=KEYS)


def _clicks(html: str) -> list[tuple[str, str]]:
    return [read_click(KEYS, token) for token in CLICK.findall(html)]


def test_http_links_go_through_signed_redirects() -> None:
    html = (
        '<p><a href="https://example.com/a?x=1&amp;y=2">a</a>'
        "<A class=b HREF='http://example.com/b'>b</A>"
        "<a href=https://example.com/c>c</a>"
        '<a\n  title="x > y" href=" https://example.com/d ">d</a></p>'
    )
    out = _rewrite(html)
    assert _clicks(out) == [
        ("msg-1", "https://example.com/a?x=1&y=2"),  # entities decoded: the real URL
        ("msg-1", "http://example.com/b"),
        ("msg-1", "https://example.com/c"),
        ("msg-1", "https://example.com/d"),
    ]
    assert "example.com/a" not in out and "class=b" in out and 'title="x > y"' in out


@pytest.mark.parametrize(
    "link",
    [
        '<a href="mailto:help@example.com">m</a>',
        '<a href="tel:+15551234">t</a>',
        '<a href="#section">s</a>',
        '<a href="/relative">r</a>',
        '<a href="javascript:void(0)">j</a>',
        '<a data-jetpost-notrack href="https://example.com/keep">k</a>',
        '<a href="https://example.com/keep" DATA-JETPOST-NOTRACK="">k</a>',
        '<a name="anchor">n</a>',
        '<abbr href="https://example.com/">not a link</abbr>',
        f'<a href="{PUBLIC}/u/v1.x.y">already ours</a>',
    ],
)
def test_links_left_alone(link: str) -> None:
    assert _rewrite(link) == link


def test_only_the_href_attribute_counts() -> None:
    html = '<a title=" href=https://evil.example/" data-href="https://x.example/" href="https://ok.example/">o</a>'
    assert _clicks(_rewrite(html)) == [("msg-1", "https://ok.example/")]
    assert 'title=" href=https://evil.example/"' in _rewrite(html)


def test_pixel_before_body_end_or_at_the_end() -> None:
    html = "<html><body><p>hi</p></BODY></html>"
    out = add_open_pixel(html, "msg-1", public_url=PUBLIC, keys=KEYS)
    match = re.search(r'<img src="https://links\.example\.com/t/o/([^"]+)" width="1" '
                      r'height="1" alt=""></BODY></html>$', out)  # fmt: skip
    assert match and read_open(KEYS, match.group(1)) == "msg-1"
    bare = add_open_pixel("<p>hi</p>", "msg-1", public_url=PUBLIC, keys=KEYS)
    assert bare.startswith("<p>hi</p><img src=")


def test_unsubscribe_headers() -> None:
    headers = unsubscribe_headers(
        "msg-1", "ada@example.org", "news", public_url=PUBLIC, keys=KEYS,
        mailto="unsubscribe@example.com",
    )  # fmt: skip
    assert headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    match = re.fullmatch(
        r"<https://links\.example\.com/u/([^>]+)>, <mailto:unsubscribe@example\.com\?subject="
        r"unsubscribe%20([^>]+)>",
        headers["List-Unsubscribe"],
    )
    assert match and match.group(1) == match.group(2)
    claims = read_unsubscribe(KEYS, match.group(1))
    assert (claims.message_id, claims.recipient, claims.scope) == ("msg-1", "ada@example.org",
                                                                   "news")  # fmt: skip
    plain = unsubscribe_headers("msg-1", "a@example.org", "n", public_url=PUBLIC, keys=KEYS)
    assert "mailto" not in plain["List-Unsubscribe"]


# -- in render() --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def catalog() -> TemplateCatalog:
    return TemplateCatalog.load(TEMPLATES_DIR, keys=KEYS)


def _accepted(**fields: Any) -> Accepted:
    envelope = Envelope(
        sender=Mailbox(email="noreply@example.com"), to=(Mailbox(email="Ada@Example.org"),)
    )
    defaults: dict[str, Any] = {
        "event_id": "evt-1", "message_id": "msg-1", "envelope": envelope, "subject": "Hi",
        "html": '<html><body><a href="https://example.com/x">x</a></body></html>',
    }  # fmt: skip
    return Accepted(**{**defaults, **fields})


def _render(accepted: Accepted, catalog: TemplateCatalog, **tracking: Any) -> Rendered:
    result = render(
        accepted, catalog, mail_domain="example.com",
        tracking=Tracking(keys=KEYS, public_url=PUBLIC, **tracking),
    )  # fmt: skip
    assert isinstance(result, Rendered), result
    return result


def test_off_by_default_and_on_per_message(catalog: TemplateCatalog) -> None:
    plain = _render(_accepted(), catalog)
    assert "/t/" not in (plain.html or "") and "List-Unsubscribe" not in plain.headers
    both = _render(_accepted(track=Track(opens=True, clicks=True)), catalog)
    assert _clicks(both.html or "") == [("msg-1", "https://example.com/x")]
    assert "/t/o/" in (both.html or "")
    assert "https://example.com/x" in (both.text or "")  # the text part keeps real links
    again = _render(_accepted(track=Track(opens=True, clicks=True)), catalog)
    assert again.html == both.html  # deterministic tokens: the same mail when rendered again


def test_settings_defaults_and_per_message_override(catalog: TemplateCatalog) -> None:
    on = _render(_accepted(), catalog, track_opens=True, track_clicks=True)
    assert "/t/o/" in (on.html or "") and "/t/c/" in (on.html or "")
    off = _render(_accepted(track=Track(clicks=False)), catalog, track_opens=True,
                  track_clicks=True)  # fmt: skip
    assert "/t/o/" in (off.html or "") and "/t/c/" not in (off.html or "")


def test_list_unsubscribe_for_tagged_mail_to_one_recipient(catalog: TemplateCatalog) -> None:
    tagged = _render(_accepted(tags=("newsletter", "weekly")), catalog)
    claims = read_unsubscribe(KEYS, tagged.headers["List-Unsubscribe"][len(PUBLIC) + 4 : -1])
    assert (claims.recipient, claims.scope) == ("ada@example.org", "newsletter")
    assert tagged.headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"

    two = _accepted(tags=("newsletter",)).envelope.model_copy(
        update={"cc": (Mailbox(email="bob@example.org"),)}
    )
    shared = _render(_accepted(tags=("newsletter",), envelope=two), catalog)
    assert "List-Unsubscribe" not in shared.headers  # whose address would it be?

    own = _render(_accepted(tags=("n",), headers={"List-Unsubscribe": "<https://mine/>"}), catalog)
    assert own.headers["List-Unsubscribe"] == "<https://mine/>"
    assert "List-Unsubscribe-Post" not in own.headers

    resent = reuse(
        _accepted(message_id="msg-2", tags=("newsletter",)), tagged, mail_domain="example.com",
        tracking=Tracking(keys=KEYS, public_url=PUBLIC),
    )  # fmt: skip
    link = resent.headers["List-Unsubscribe"][len(PUBLIC) + 4 : -1]
    assert read_unsubscribe(KEYS, link).message_id == "msg-2"


def test_signed_url_in_templates(tmp_path: Path) -> None:
    folder = tmp_path / "reset"
    folder.mkdir()
    (folder / "subject.j2").write_text("Reset")
    (folder / "html.j2").write_text(
        '<a data-jetpost-notrack href="{{ signed_url(base, "reset", user, 3600) }}">go</a>'
    )
    catalog = TemplateCatalog.load(tmp_path, keys=KEYS)
    accepted = _accepted(
        subject=None, html=None, template="reset",
        vars={"base": "https://app.example.com/reset?a=1&b=2", "user": "user-42"},
        track=Track(clicks=True),
    )  # fmt: skip
    out = _render(accepted, catalog)
    assert _render(accepted, catalog).html == out.html  # the same mail when rendered again
    href = re.search(r'href="([^"]+)"', out.html or "")
    assert href is not None
    url = href.group(1).replace("&amp;", "&")
    assert url.startswith("https://app.example.com/reset?a=1&b=2&token=")
    claims = verify_action_token(KEYS, parse_qs(urlsplit(url).query)["token"][0], "reset",
                                 now=accepted.occurred_at)  # fmt: skip
    assert claims.subject == "user-42"
    assert claims.expires_at.timestamp() == int(accepted.occurred_at.timestamp()) + 3600

    bad = _accepted(subject=None, html=None, template="reset",
                    vars={"base": "javascript:alert(1)", "user": "u"})  # fmt: skip
    failed = render(bad, catalog, mail_domain="example.com")
    assert failed.type == "render_failed" and "http(s)" in failed.reason
    keyless = TemplateCatalog.load(tmp_path)
    assert render(accepted, keyless, mail_domain="example.com").type == "render_failed"

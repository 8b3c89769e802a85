"""Tracking and unsubscribe, added to a rendered message. Pure: no I/O.

- Click tracking rewrites every http(s) link of the HTML part to
  `<public_url>/t/c/<token>`; the token signs (message id, original URL), so the
  redirect only ever goes where the mail pointed at render time. mailto:, tel:,
  `#anchors`, relative links and links marked `data-jetpost-notrack` stay as they are.
  The text part keeps the real URLs.
- Open tracking adds a 1x1 pixel, `<public_url>/t/o/<token>`, before `</body>`.
- List-Unsubscribe (RFC 2369) with one-click POST (RFC 8058) for mail that belongs
  to a list: a message with tags (the first tag is the list, the unsubscribe scope)
  and a single recipient, so the link can only ever unsubscribe that recipient.

Tokens are deterministic, so rendering the same `accepted` twice gives the same mail.
"""

from __future__ import annotations

import html as htmlmod
import re
from dataclasses import dataclass

from shared.events import Accepted
from shared.settings import Settings
from shared.tokens import KeyRing, click_token, is_web_url, open_token, unsubscribe_token

# An <a> or <area> start tag (attribute values may hold '>' when quoted), and one
# attribute in it: name, then an optional value (double-, single- or unquoted).
_LINK_TAG = re.compile(r"""<(?:a|area)(?=[\s>/])(?:[^>"']|"[^"]*"|'[^']*')*>""", re.IGNORECASE)
_ATTRIBUTE = re.compile(
    r"""(?P<name>[^\s"'>/=]+)(?:(?P<eq>\s*=\s*)"""
    r"""(?:"(?P<dq>[^"]*)"|'(?P<sq>[^']*)'|(?P<bare>[^\s"'=<>`]+)))?"""
)
_BODY_END = re.compile(r"</body\s*>", re.IGNORECASE)

NOTRACK = "data-jetpost-notrack"
ONE_CLICK = "List-Unsubscribe=One-Click"


def _href(tag: str) -> re.Match[str] | None:
    """The tag's (first) href attribute; None when absent or marked not to track."""
    found = None
    name_end = 2 if tag[2:3].isspace() or tag[2:3] in (">", "/") else 5  # after <a / <area
    for attribute in _ATTRIBUTE.finditer(tag, name_end):
        name = attribute.group("name").lower()
        if name == NOTRACK:
            return None
        if name == "href" and found is None and attribute.group("eq"):
            found = attribute
    return found


def rewrite_links(html: str, message_id: str, *, public_url: str, keys: KeyRing) -> str:
    """Every trackable link of `html` through `<public_url>/t/c/<token>`."""
    ours = (f"{public_url}/t/", f"{public_url}/u/")

    def rewrite(match: re.Match[str]) -> str:
        tag = match.group(0)
        href = _href(tag)
        if href is None:
            return tag
        raw = next(v for v in (href.group("dq"), href.group("sq"), href.group("bare"), "")
                   if v is not None)  # fmt: skip
        url = htmlmod.unescape(raw).strip()
        if not is_web_url(url) or url.startswith(ours):
            return tag
        tracked = f"{public_url}/t/c/{click_token(keys, message_id, url)}"
        start, end = href.span()
        return f'{tag[:start]}href="{htmlmod.escape(tracked)}"{tag[end:]}'

    return _LINK_TAG.sub(rewrite, html)


def add_open_pixel(html: str, message_id: str, *, public_url: str, keys: KeyRing) -> str:
    pixel = (
        f'<img src="{public_url}/t/o/{open_token(keys, message_id)}" width="1" height="1" alt="">'
    )
    ends = list(_BODY_END.finditer(html))
    if not ends:
        return html + pixel
    at = ends[-1].start()
    return html[:at] + pixel + html[at:]


def unsubscribe_headers(
    message_id: str,
    recipient: str,
    scope: str,
    *,
    public_url: str,
    keys: KeyRing,
    mailto: str | None = None,
) -> dict[str, str]:
    token = unsubscribe_token(keys, message_id, recipient, scope)
    targets = [f"<{public_url}/u/{token}>"]
    if mailto:
        targets.append(f"<mailto:{mailto}?subject=unsubscribe%20{token}>")
    return {"List-Unsubscribe": ", ".join(targets), "List-Unsubscribe-Post": ONE_CLICK}


@dataclass(frozen=True)
class Tracking:
    """What the renderer needs to add tracking and unsubscribe to a message."""

    keys: KeyRing
    public_url: str
    track_opens: bool = False
    track_clicks: bool = False
    unsubscribe_mailto: str | None = None

    @classmethod
    def from_settings(cls, settings: Settings, keys: KeyRing) -> Tracking:
        return cls(
            keys=keys,
            public_url=settings.public_base_url,
            track_opens=settings.track_opens,
            track_clicks=settings.track_clicks,
            unsubscribe_mailto=settings.unsubscribe_mailto,
        )

    def html(self, accepted: Accepted, html: str) -> str:
        """The HTML part with the links and pixel this message asks for."""
        track = accepted.track
        clicks = track.clicks if track and track.clicks is not None else self.track_clicks
        opens = track.opens if track and track.opens is not None else self.track_opens
        message_id, public_url = accepted.message_id, self.public_url
        if clicks:
            html = rewrite_links(html, message_id, public_url=public_url, keys=self.keys)
        if opens:
            html = add_open_pixel(html, message_id, public_url=public_url, keys=self.keys)
        return html

    def headers(self, accepted: Accepted, headers: dict[str, str]) -> dict[str, str]:
        """`headers` plus List-Unsubscribe when the message belongs to a list (and the
        caller did not set their own)."""
        recipients = accepted.envelope.recipients
        if accepted.transactional or not accepted.tags or len(recipients) != 1:
            return headers
        if any(name.lower().startswith("list-unsubscribe") for name in headers):
            return headers
        added = unsubscribe_headers(
            accepted.message_id, recipients[0].email.lower(), accepted.tags[0],
            public_url=self.public_url, keys=self.keys, mailto=self.unsubscribe_mailto,
        )  # fmt: skip
        return {**headers, **added}

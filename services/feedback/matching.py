"""Which jetpost message a bounce or complaint is about. Pure.

The clues, most trusted first: (a) the envelope recipient of the report, when the
mail went out with a VERP return path (`bounces+<message_id>@<bounce domain>`): the
reporting MTA sends it there whatever it did to the headers; (b) the returned
message's X-Jetpost-Message-Id header; (c) its Message-ID, `<message_id@domain>`,
when the domain is ours; (d) the returned message's Return-Path (or an ARF report's
Original-Mail-From) when it is a VERP address, for a report that reached us by
another way. An id is only taken if it is a valid message id; whether the log knows
it is the receiver's question.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from services.feedback.parts import Original
from shared.subjects import MESSAGE_ID_RE

VERP_LOCAL = "bounces"
Via = Literal["verp", "header", "message-id"]


@dataclass(frozen=True)
class Match:
    message_id: str
    via: Via


def verp_address(message_id: str, bounce_domain: str) -> str:
    """The return path that carries the message id back: `bounces+<id>@<domain>`."""
    if not MESSAGE_ID_RE.match(message_id):
        raise ValueError(f"not a message id: {message_id!r}")
    return f"{VERP_LOCAL}+{message_id}@{bounce_domain.lower()}"


def from_verp(address: str, bounce_domain: str) -> str | None:
    """The message id a VERP address carries, or None. The local part's `bounces`
    is matched in any case; the id keeps its case (local parts are case-sensitive)."""
    local, at, domain = address.strip().strip("<>").rpartition("@")
    if not at or domain.lower() != bounce_domain.lower():
        return None
    tag, plus, message_id = local.partition("+")
    if not plus or tag.lower() != VERP_LOCAL:
        return None
    return message_id if MESSAGE_ID_RE.match(message_id) else None


def from_message_id(value: str | None, domains: Iterable[str]) -> str | None:
    """`<abc@example.com>` -> `abc` when `example.com` is one of ours."""
    if not value:
        return None
    text = value.strip()
    if text.startswith("<") and ">" in text:
        text = text[1 : text.index(">")]
    local, at, domain = text.rpartition("@")
    ours = {d.lower() for d in domains}
    if not at or domain.strip().lower() not in ours:
        return None
    return local if MESSAGE_ID_RE.match(local) else None


def from_header(value: str | None) -> str | None:
    text = (value or "").strip()
    return text if MESSAGE_ID_RE.match(text) else None


def match_message(
    rcpt_tos: Iterable[str], original: Original, *, bounce_domain: str, mail_domain: str
) -> Match | None:
    for rcpt in rcpt_tos:
        if (found := from_verp(rcpt, bounce_domain)) is not None:
            return Match(found, "verp")
    if (found := from_header(original.jetpost_id)) is not None:
        return Match(found, "header")
    if (found := from_message_id(original.message_id, (mail_domain,))) is not None:
        return Match(found, "message-id")
    if original.return_path and (found := from_verp(original.return_path, bounce_domain)):
        return Match(found, "verp")
    for value in original.quoted_ids:  # headers a plain-text notice quotes inline
        if (found := from_message_id(value, (mail_domain,))) is not None:
            return Match(found, "message-id")
    return None

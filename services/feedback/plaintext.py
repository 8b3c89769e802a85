"""Bounces without a delivery-status part: qmail, Exim, older Exchange and Postfix,
Yahoo's and Gmail's older notices, AOL, GroupWise, Domino, MDaemon, X.400 gateways
and plain-text delay warnings. flufl.bounce (GNU Mailman's detectors) finds the
failed addresses and whether each failure is temporary; the status code and the
diagnostic come from the text around each address here. Pure.
"""

from __future__ import annotations

import logging
import re
from dataclasses import replace
from email.message import Message

from flufl.bounce import _scan, all_failures

from services.feedback.addresses import addresses_in, valid_address
from services.feedback.dsn import RecipientResult
from services.feedback.parts import Original, original_of
from shared.bounce_reasons import best_status, codes_in, reply_code_in, text_reason

RETURNED = frozenset({"message/rfc822", "text/rfc822-headers", "message/rfc822-headers",
                      "message/global", "message/global-headers"})  # fmt: skip
# Where a notice starts quoting the returned message inline.
_QUOTE_START = re.compile(
    r"^\s*(-+ ?(original message|this is a copy of the message|returned message|below this line"
    r"|message header follows|the header of the original|original message follows)"
    r"|.*(original message follows|headers of your message|your message reads|copy of the"
    r" message|message follows:|unsent message below)).*$",
    re.I | re.M,
)
_TAG = re.compile(r"<[^>]+>")
CONTEXT_BEFORE, CONTEXT_AFTER, NOTICE_CHARS = 2, 6, 1500
# flufl.bounce logs every detector it runs at INFO and each one that trips on odd
# mail with a traceback; the receiver logs what it makes of a report instead.
logging.getLogger("flufl.bounce").setLevel(logging.CRITICAL)
Found = tuple[frozenset[bytes], frozenset[bytes]]


def _detect(msg: Message) -> Found:
    """flufl.bounce's (temporary, permanent) failures. A detector that trips on odd
    mail stops its pipeline, so then the detectors are run one by one, skipping it."""
    try:
        return all_failures(msg)
    except Exception:  # noqa: S110 - any detector bug: try the others below
        pass
    for detector in getattr(_scan, "_DETECTORS", ()):
        try:
            temporary, permanent = detector().process(msg)
        except Exception:  # noqa: S112 - this detector cannot read this mail
            continue
        if temporary or permanent:
            return frozenset(temporary), frozenset(permanent)
    return frozenset(), frozenset()


def notice_text(msg: Message) -> str:
    """The human-readable part of the notice: its text parts, without the returned
    message (attached, or quoted inline after a marker line)."""
    chunks: list[str] = []
    stack = [msg]
    while stack:
        part = stack.pop(0)
        ctype = part.get_content_type()
        if part is not msg and ctype in RETURNED:
            continue
        if part.is_multipart():
            payload = part.get_payload()
            stack[:0] = [p for p in payload if isinstance(p, Message)] if isinstance(
                payload, list) else []  # fmt: skip
            continue
        if part.get_content_maintype() != "text" and part is not msg:
            continue
        raw = part.get_payload(decode=True)
        charset = part.get_content_charset() or "utf-8"
        try:
            text = raw.decode(charset, "replace") if isinstance(raw, bytes) else str(raw or "")
        except LookupError:
            text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else ""
        if ctype == "text/html":
            text = _TAG.sub(" ", text)
        chunks.append(text.replace("\r\n", "\n"))
    text = "\n".join(chunks)
    quoted = _QUOTE_START.search(text)
    return text[: quoted.start()] if quoted and quoted.start() > 0 else text


def context(lines: list[str], address: str, others: set[str]) -> str:
    """The lines about `address`: the one naming it, a few before and those after,
    up to the next line naming another failed address."""
    needle = address.lower()
    for i, line in enumerate(lines):
        if needle not in line.lower():
            continue
        start = max(0, i - CONTEXT_BEFORE)
        end = i + 1
        while end < len(lines) and end <= i + CONTEXT_AFTER:
            low = lines[end].lower()
            if any(o in low for o in others):
                break
            end += 1
        return "\n".join(line.strip() for line in lines[start:end] if line.strip())
    return ""


def _failures(msg: Message) -> list[tuple[str, str]]:
    """(address, action) pairs flufl.bounce finds, permanent ones first."""
    temporary, permanent = _detect(msg)
    found: dict[str, str] = {}
    for raw, action in [(a, "failed") for a in sorted(permanent)] + [
        (a, "delayed") for a in sorted(temporary)
    ]:
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
        address = valid_address(text)
        if address is not None:
            found.setdefault(address, action)
    return list(found.items())


_BOUNCE_SENDER = re.compile(r"mailer-daemon|postmaster|mail delivery|mailer|mmdf", re.I)
_BOUNCE_SUBJECT = re.compile(
    r"undeliver|delivery (status|failure|has failed|notification|problem|report|delayed)"
    r"|returned mail|failure notice|mail delivery|non-?delivery|could not be delivered"
    r"|warning: could not|mail system error|delivery failed|nicht zustellbar|non remis",
    re.I,
)
_FAILURE_LINE = re.compile(
    r"fail|unknown|not (be )?deliver|undeliver|reject|invalid|does not exist|no such"
    r"|unable to deliver|could not|error|refused|denied|quota|full|expired|bounce",
    re.I,
)
_DELAY = re.compile(r"delayed|not yet been delivered|will (continue|keep) trying|still trying"
                    r"|warning:|temporary|will retry", re.I)  # fmt: skip


def _fallback(msg: Message, text: str) -> list[tuple[str, str]]:
    """What flufl.bounce does not recognise: X-Failed-Recipients (Exim, Gmail), else in
    a mail that is plainly a bounce (from a mailer daemon, or a bounce subject), the
    addresses on its failure lines, not counting its own sender, recipient or ours."""
    listed = [valid_address(a) for v in msg.get_all("X-Failed-Recipients", [])
              for a in str(v).split(",")]  # fmt: skip
    action = "delayed" if _DELAY.search(str(msg.get("Subject", ""))) else "failed"
    if failures := [(a, action) for a in dict.fromkeys(listed) if a]:
        return failures
    sender, subject = str(msg.get("From", "")), str(msg.get("Subject", ""))
    if not (_BOUNCE_SENDER.search(sender) or _BOUNCE_SUBJECT.search(subject)):
        return []
    own = {a.lower() for h in ("From", "To", "Sender", "Reply-To", "Return-Path")
           for a in addresses_in(str(msg.get(h, "")))}  # fmt: skip
    lines = text.split("\n")
    found: dict[str, str] = {}
    for i, line in enumerate(lines):
        for address in addresses_in(line):
            if address.lower() in own or "mailer-daemon" in address.lower():
                continue
            around = " ".join(lines[max(0, i - 2) : i + 3])
            if _FAILURE_LINE.search(around):
                found.setdefault(address, "delayed" if _DELAY.search(text) else "failed")
    return list(found.items())[:10]


def parse_plain(msg: Message) -> tuple[RecipientResult, ...]:
    """One result per failed address flufl.bounce finds (or, failing that, the
    notice's own failure lines name); () when there is none."""
    text = notice_text(msg)
    failures = _failures(msg) or _fallback(msg, text)
    if not failures:
        return ()
    lines = text.split("\n")
    lowered = {a.lower() for a, _ in failures}
    notice = " ".join(text.split())[:NOTICE_CHARS]
    results = []
    for address, action in failures:
        near = context(lines, address, lowered - {address.lower()})
        # One failed address: the whole notice speaks of it (Gmail, Yahoo and others
        # put the reason in a paragraph away from the address).
        if len(failures) == 1 and not (codes_in(near) or text_reason(near)):
            near = f"{near}\n{notice}".strip()
        results.append(RecipientResult(
            final_recipient=address, action=action, status=best_status(None, near),
            diagnostic_code=near[:1000] or None, candidates=(address,),
            evidence=near[:2000], reply_code=reply_code_in(near),
        ))  # fmt: skip
    return tuple(results)


_QUOTED_ID = re.compile(r"^[>\s]*(message-id|x-jetpost-message-id):[ \t]*(\S+)", re.I | re.M)


def quoted_original(msg: Message) -> Original:
    """What the notice says of the returned message: its attached headers wherever
    they are, and the Message-ID / X-Jetpost-Message-Id lines quoted in its text."""
    original = original_of(list(msg.walk()))
    text = "\n".join(_texts(msg))
    quoted = tuple(dict.fromkeys(m.group(2) for m in _QUOTED_ID.finditer(text)))
    return replace(original, quoted_ids=quoted[:20])


def _texts(msg: Message) -> list[str]:
    out = []
    for part in msg.walk():
        if part.is_multipart() or part.get_content_maintype() not in ("text", "message"):
            continue
        raw = part.get_payload(decode=True)
        if isinstance(raw, bytes):
            out.append(raw.decode("utf-8", "replace"))
    return out

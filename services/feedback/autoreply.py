"""Mail that answers ours but is not a bounce: vacation notices and other auto-replies
(RFC 3834), challenge/response and sender-whitelist systems (TMDA, Boxbe, Spam
Arrest ...). Some are shaped like DSNs; none says the address is bad, so none may
become a `bounced` event. Pure.
"""

from __future__ import annotations

import re
from email.message import Message

from services.feedback.parts import field

# Headers only challenge/whitelist systems and autoresponders set.
_MARK_HEADERS = ("X-Boxbe-", "X-TMDA", "X-Challenge", "X-Spam-Arrest", "X-Bluebottle",
                 "X-Autoreply", "X-Autorespond", "X-Auto-Reply", "X-Vacation",
                 "X-Mailer-Autoreply", "X-Cr-Hashedpuzzle")  # fmt: skip
_CHALLENGE = re.compile(
    r"challenge|boxbe|tmda|white-?list|spam ?arrest|please confirm|confirm your|verify your"
    r"|verification (required|needed|request)|approval (required|needed|request)"
    r"|awaiting (your )?(approval|verification)|sender verification|antispam verification"
    r"|requires? (your )?(confirmation|verification)|permission to send",
    re.I,
)
_AUTOREPLY = re.compile(
    r"out of (the )?office|vacation|auto(matic(ally)?)?[ -]?(reply|replied|response|responder"
    r"|antwort|r[ée]ponse)|abwesen|\babsen(ce|t)\b|away from (the |my )?(office|desk)"
    r"|autorespon|r[ée]ponse automatique|respuesta autom|risposta automatica|on leave"
    r"|on holiday|i am away|i'm away|currently away|not in the office|ooo\b",
    re.I,
)
_BOUNCE_SUBJECT = re.compile(
    r"undeliver|undelivered|delivery (status|failure|has failed|notification|problem)"
    r"|returned mail|failure notice|mail delivery|non-?delivery|could not be delivered"
    r"|delivery (report|delayed)|warning: could not|mail system error|bounce",
    re.I,
)
_DAEMON = re.compile(r"mailer-daemon|postmaster|mail delivery (sub)?system|mmdf|mailer", re.I)


def autoreply_reason(msg: Message) -> str | None:
    """Why the mail is an auto-reply or a challenge, or None when it is not one."""
    names = [str(k) for k in msg]
    for mark in _MARK_HEADERS:
        if any(name.lower().startswith(mark.lower()) for name in names):
            return f"auto-reply or challenge ({mark} header)"
    if (field(msg, "X-Delivery-Agent") or "").upper().startswith("TMDA"):
        return "a TMDA challenge"
    subject = field(msg, "Subject") or ""
    if _CHALLENGE.search(subject):
        return f"a challenge/whitelist request (subject {subject[:80]!r})"
    precedence = (field(msg, "Precedence") or "").lower()
    if precedence == "auto_reply":
        return "an auto-reply (Precedence: auto_reply)"
    if _AUTOREPLY.search(subject) and not _BOUNCE_SUBJECT.search(subject):
        return f"an auto-reply (subject {subject[:80]!r})"
    auto = (field(msg, "Auto-Submitted") or "").lower()
    sender = field(msg, "From") or ""
    if (
        auto.startswith("auto-replied")
        and not _DAEMON.search(sender)
        and not _BOUNCE_SUBJECT.search(subject)
        and msg.get_content_type() != "multipart/report"
    ):
        return "an auto-reply (Auto-Submitted: auto-replied, not from a mailer)"
    return None

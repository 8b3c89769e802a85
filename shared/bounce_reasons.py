"""Why a mail bounced, and whether that makes the address bad. Pure.

One function, `classify(status, smtp_code, diagnostic, action)`, used everywhere a
bounce is judged: the feedback receiver when it records a `bounced` event, the
suppression rules (live and in the projection), and so `jetpost replay suppressions
--dry-run`, which re-judges every past bounce from the evidence the event kept.

The model is Sisimai's reason table: a reason is found from the most specific
evidence, and only reasons that say the *address* is bad are hard (user unknown,
host unknown, moved, a domain that accepts no mail); a full mailbox, a spam block,
a policy refusal or an expired queue are about the moment, the message or us, so
they are soft. The order of evidence:

0. A refusal of the sender (at MAIL FROM, a bad sender address) is about us: policy.
1. A specific enhanced status code (5.1.1, 5.2.2 ...) names the reason, from the
   Status field or, when that is generic (x.0.0, x.7.1, x.5.x ...) or missing, from
   the diagnostic text (`550 5.1.1 ...` inside a `5.0.0` DSN).
2. Otherwise the diagnostic text, matched against the reason patterns in order.
3. Otherwise what a generic code implies (x.7.1: policy), else `other`.

Temporary failures (action delayed, 4.x.x, 4xx) are always soft. A permanent failure
that names no reason at all is hard, as most providers count it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

Kind = Literal["hard", "soft"]

# Reasons whose permanent failure means the address itself cannot receive mail; and a
# permanent failure that names no reason at all (`other`), as most providers do.
HARD_REASONS = frozenset({"user_unknown", "host_unknown", "has_moved", "not_accept", "other"})
NOT_BOUNCES = frozenset({"delivered", "relayed", "expanded"})

_ENHANCED = re.compile(r"(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?![\d.]*\d)")
_REPLY = re.compile(r"(?<![\d.-])([245][0-5]\d)(?:[\s-]|$)")


@dataclass(frozen=True)
class Verdict:
    reason: str
    kind: Kind
    status: str | None = None  # the code the verdict rests on, when one did

    @property
    def hard(self) -> bool:
        return self.kind == "hard"


# Specific codes (RFC 3463 and the IANA registry) -> reason. Codes not listed and the
# GENERIC ones leave the reason to the text.
_BY_CODE: dict[str, str] = {
    "1.1": "user_unknown", "1.2": "host_unknown", "1.3": "user_unknown",
    "1.4": "user_unknown", "1.6": "has_moved", "1.7": "policy", "1.8": "policy",
    "1.10": "not_accept",
    "2.1": "user_unknown", "2.2": "mailbox_full", "2.3": "message_too_large",
    "3.1": "system_full", "3.4": "message_too_large",
    "4.1": "network", "4.2": "network", "4.3": "host_unknown", "4.4": "not_accept",
    "4.6": "network", "4.7": "expired",
    "6.0": "content", "6.1": "content",
    "7.7": "content", "7.13": "suspend", "7.17": "has_moved", "7.18": "has_moved",
    "7.23": "policy", "7.24": "policy", "7.25": "policy", "7.26": "policy",
    "7.27": "not_accept", "7.28": "spam_blocked", "7.29": "policy",
}  # fmt: skip
# Codes that many servers use for anything: they never beat the text.
_GENERIC = frozenset({"0.0", "1.0", "2.0", "3.0", "4.0", "5.0", "7.0", "7.1",
                      "5.1", "5.2", "5.3", "5.4", "5.5", "6.0"})  # fmt: skip
# What a generic code means when the text says nothing better.
_BY_GENERIC: dict[str, str] = {"7.0": "policy", "7.1": "policy", "4.0": "network",
                               **{f"5.{n}": "system_error" for n in range(6)}}  # fmt: skip
# Refused for the sender, not the recipient (the MAIL FROM stage, a bad sender
# address or domain): about us, whatever code and words follow.
_SENDER_REFUSED = re.compile(
    r"after mail from|sender (address )?(rejected|denied|refused|verify failed|domain)"
    r"|mail from .{0,60}(rejected|refused|denied)|envelope sender .{0,30}(rejected|refused|denied)",
)

# The diagnostic's words, in order: the first match names the reason. Specific
# before general (a "mailbox size limit" is a full mailbox, not a big message; an
# "unknown user ... spam" reply is about the user).
_TEXT: tuple[tuple[str, str], ...] = (
    ("expired", r"delivery time expired|retry time(out)? (exceeded|reached)|message expired"
     r"|(could not|couldn't|has not) been delivered (in|for|within) \d+ (day|hour)"
     r"|queued? too long|too long in (the )?queue|time limit exceeded"
     r"|no successful delivery|retry timeout|expired after|maximum time"),
    ("mailbox_full", r"mailbox (is |was |appears to be )?full|over ?quota|quota (exceeded|exceed"
     r"|full|limit)|exceed(s|ed)? (the |his |her |their )?(storage|quota|mailbox)|full mailbox"
     r"|insufficient (disk |storage )?space|mailbox size limit|disk quota|not enough (disk )?space"
     r"|user is over|mailfolder is full|mail ?box (has )?exceeded|account is full|is full"
     r"|quota|space not enough|mailbox space"),
    ("message_too_large", r"message (is )?(too (big|large)|size exceeds|exceeds)|size limit"
     r"|message length exceeds|too large|exceeds (the )?(maximum|max) (message )?size"
     r"|message size"),
    ("user_unknown", r"(account|address|mailbox) (has been |is )?(\w+ or )?(discontinued|closed"
     r"|deleted|terminated|removed|cancell?ed)"),
    ("suspend", r"account (has been |is |was )?(temporarily )?(disabled|suspended|inactive"
     r"|locked|frozen|expired|blocked)"
     r"|mailbox (has been |is )?(disabled|suspended|inactive|locked|frozen)"
     r"|inactive (user|account|mailbox)|(user|recipient|account) (is )?(not active|inactive)"
     r"|account has been temporarily"),
    ("has_moved", r"has moved|address (has )?changed|no longer (with|at) "),
    ("user_unknown", r"user ?unknown|unknown (user|recipient|local[- ]part|address|mailbox|alias)"
     r"|no such (user|recipient|mailbox|address|account|person|local user)"
     r"|(does not|doesn't|doesnt|not) exists?|invalid (recipient|mailbox|address|user|account)"
     r"|(user|recipient|mailbox|address|account|addressee) (was )?(not found|unknown)"
     r"|not a valid (mailbox|recipient|user|address)|bad destination mailbox"
     r"|no mailbox|mailbox (not found|unavailable|not available)|unrouteable address"
     r"|not listed in|recipient address rejected|address rejected|user (not|doesn.t) "
     r"|no longer (valid|available|in use|active)|not our customer|unknown or illegal"
     r"|(account|address|mailbox) (is )?(invalid|closed|deleted|discontinued|terminated)"
     r"|(recipient|user) (rejected|invalid)|no valid recipients"
     r"|is not a known user|name is not recognized|invalid-recipient|not a known user"
     r"|addressee unknown|undeliverable address|no account by that name|invalid .{0,20}userid"
     r"|n'existe pas|n'exist|existiert nicht|no existe|unbekannt|sconosciuto|inexistente"
     r"|doesn.t have a|does not have a|unknown or invalid|address unknown"),
    ("host_unknown", r"host ?unknown|unknown host|(domain|host) (name )?(not found|does not exist"
     r"|unknown|lookup failed)|no such (domain|host)|unrouteable|unroutable|couldn't find any host"
     r"|could not find any host|name or service not known|no mx|invalid domain|unknown domain"
     r"|domain (is )?(invalid|disabled)|host or domain name not found|nxdomain"
     r"|mx (record|lookup)|dns (error|lookup)"),
    ("not_accept", r"does not accept (e-?)?mail|accepts no mail|null mx|not accepting mail"),
    ("spam_blocked", r"spam|black ?list|block ?list|\brbl\b|dnsbl|spamhaus|spamcop|barracuda"
     r"|listed (at|in|on|by)|reputation|junk|bulk mail|unsolicited|blocked|virus|malware"
     r"|banned|content (rejected|filter)|phish"),
    ("system_error", r"too many hops|mail loop|loop detected|looping|routing loop"),
    ("rate_limited", r"too many|rate limit|throttl|too fast|exceeded the (maximum )?(number|rate)"
     r"|temporarily deferred|try again later|slow down|connection limit"),
    ("policy", r"policy|not allowed|not permitted|denied|refused|\bspf\b|dmarc|dkim"
     r"|authenticat|reverse dns|\bptr\b|relay|not authori[sz]ed|prohibited|rejected"),
    ("network", r"connection (refused|timed out|reset|lost)|lost connection|network"
     r"|timed out|timeout|unreachable|no route"),
    ("system_error", r"system (error|full)|internal error|local error|mail loop|loop detected"
     r"|too many hops|configuration error|server error|command died|command output|x-unix"
     r"|mailer error|procmail|maildrop"),
)  # fmt: skip
# Matched against lower-cased text (faster than re.I), one compiled pattern per reason.
_PATTERNS = tuple((reason, re.compile(pattern, re.M)) for reason, pattern in _TEXT)
MAX_TEXT = 1200  # the diagnostic's words that are read


def _split(code: str | None) -> tuple[str, str] | None:
    if not code:
        return None
    found = _ENHANCED.search(code)
    if not found:
        return None
    klass, subject, detail = found.groups()
    return klass, f"{int(subject)}.{int(detail)}"


def _specific(code: str | None) -> bool:
    parts = _split(code)
    return parts is not None and parts[1] not in _GENERIC


def codes_in(text: str) -> list[str]:
    """The enhanced status codes a diagnostic text mentions, in order."""
    return [".".join(m.groups()) for m in _ENHANCED.finditer(text or "")]


def reply_code_in(text: str) -> int | None:
    """The first SMTP reply code in a text (`550 5.1.1 ...` -> 550)."""
    found = _REPLY.search(text or "")
    return int(found.group(1)) if found else None


def text_reason(text: str) -> str | None:
    lowered = text[:MAX_TEXT].lower()
    for reason, pattern in _PATTERNS:
        if pattern.search(lowered):
            return reason
    return None


def best_status(status: str | None, diagnostic: str) -> str | None:
    """The most specific code: the given one unless it is generic (or missing) and the
    diagnostic names a specific one of the same class."""
    if _specific(status):
        return status
    found = [c for c in codes_in(diagnostic) if _specific(c)]
    if status is not None:
        found = [c for c in found if c[0] == status[0]] or []
    return found[0] if found else status or next(iter(codes_in(diagnostic)), None)


@lru_cache(maxsize=4096)  # the projection and the rules judge each bounce in turn
def classify(
    status: str | None, smtp_code: int | None, diagnostic: str | None, action: str | None
) -> Verdict:
    """The reason and hard/soft of one failed (or delayed) recipient."""
    text = " ".join((diagnostic or "")[: MAX_TEXT * 2].split())
    code = best_status(status, text)
    parts = _split(code)
    reason = "policy" if _SENDER_REFUSED.search(text[:MAX_TEXT].lower()) else None
    if reason is None and parts is not None and parts[1] not in _GENERIC:
        reason = _BY_CODE.get(parts[1])
    reason = reason or text_reason(text)
    if reason is None and parts is not None:
        reason = _BY_GENERIC.get(parts[1])
    reason = reason or "other"
    temporary = (
        (action or "").lower() == "delayed"
        or (parts is not None and parts[0] == "4")
        or (parts is None and smtp_code is not None and 400 <= smtp_code < 500)
    )
    kind: Kind = "hard" if reason in HARD_REASONS and not temporary else "soft"
    return Verdict(reason, kind, code)

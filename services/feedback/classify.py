"""Hard or soft: what a DSN's per-recipient result means for the address. Pure.

A hard bounce says the address is bad (it will feed the suppression set); a soft one
says this attempt failed for a reason that may pass, or that is about us or the
message rather than the address. The rules, in order:

1. action delivered, relayed or expanded: not a bounce (None).
2. action delayed: soft (the reporting MTA is still trying).
3. status 4.x.x: soft, even with action failed (the MTA gave up on a temporary
   condition, e.g. 4.4.7 queue expired: the address may be fine).
4. status 5.x.x: hard, except the codes in SOFT_PERMANENT below.
5. no usable status: the diagnostic's SMTP reply code decides the same way (4xx soft,
   5xx hard); with neither, a failed action is hard.
"""

from __future__ import annotations

from typing import Literal

from services.feedback.dsn import RecipientResult

Kind = Literal["hard", "soft"]

NOT_BOUNCES = frozenset({"delivered", "relayed", "expanded"})

# Permanent (5.x.x) codes that do not say the address is bad.
SOFT_PERMANENT: dict[str, str] = {
    "5.2.2": "mailbox full: clears when the owner makes room",
    "5.2.3": "message larger than the mailbox accepts: about this message",
    "5.3.4": "message too big for the system: about this message",
    "5.4.7": "delivery time expired: the reporting MTA gave up, not the mailbox",
    "5.7.1": "refused by policy (spam filter, blocklist, content): about us or the message",
    "5.7.23": "SPF validation failed: about our sending setup",
    "5.7.24": "SPF validation error: about our sending setup",
    "5.7.25": "reverse DNS validation failed: about our sending host",
    "5.7.26": "multiple authentication checks (DMARC) failed: about our sending setup",
}


def classify(result: RecipientResult) -> Kind | None:
    if result.action in NOT_BOUNCES:
        return None
    if result.action == "delayed":
        return "soft"
    status = result.status
    if status is not None and status[0] in "45":
        if status[0] == "4" or status in SOFT_PERMANENT:
            return "soft"
        return "hard"
    code = result.smtp_code
    if code is not None and 400 <= code < 500:
        return "soft"
    return "hard"

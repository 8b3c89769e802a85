"""When feedback puts an address on the suppression set. Pure.

The same rules run live (the `suppression_set` service keeps the NATS KV set that
intake checks) and in the `suppressions` projection, which `jetpost replay
suppressions --dry-run` re-runs over every past bounce and complaint to show what
changed rules would do before they are applied.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict

from shared.bounce_reasons import Verdict, classify
from shared.events import Bounced, Complained, Event

# (status, SMTP code, diagnostic, action) -> reason and hard/soft: shared.bounce_reasons
Classifier = Callable[[str | None, int | None, str | None, str | None], Verdict]


@dataclass(frozen=True)
class Rules:
    soft_bounce_limit: int = 3  # this many soft bounces...
    soft_bounce_window: timedelta = timedelta(days=7)  # ...within this window suppress
    # judges every bounce from the evidence its event kept; a changed classifier is
    # tried on every past bounce by `jetpost replay suppressions --dry-run`
    classifier: Classifier = classify
    suppress_complaints: bool = True
    bounce_ttl: timedelta | None = None  # None: bounce suppressions never expire


class Entry(BaseModel):
    """One address (and scope) on the suppression set, with its cause."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    address: str
    scope: str = ""
    reason: str
    source: str
    message_id: str | None = None  # the mail whose feedback caused it
    event_id: str | None = None
    created_at: datetime
    expires_at: datetime | None = None
    command_seq: int | None = None  # manual changes: the command that made them
    removed: bool = False  # a manual removal, kept so an older add cannot undo it

    def active(self, now: datetime) -> bool:
        return not self.removed and (self.expires_at is None or self.expires_at > now)

    def supersedes(self, current_seq: int | None) -> bool:
        """Manual changes apply in command order (`current_seq`: the command of the last
        change applied); feedback always applies."""
        if current_seq is None or self.command_seq is None:
            return True
        return self.command_seq > current_seq


# per address: (event id, time) of recent soft bounces
SoftHistory = tuple[tuple[str, datetime], ...]


def judge(bounce: Bounced, rules: Rules) -> Verdict:
    """The classifier's verdict on a bounce's evidence; a bounce that kept none (a
    provider's webhook that said only Permanent or Transient) keeps its own kind."""
    diagnostic = bounce.response or bounce.evidence
    if bounce.status is None and bounce.smtp_code is None and not diagnostic.strip():
        return Verdict(bounce.reason or "other", bounce.kind)
    return rules.classifier(bounce.status, bounce.smtp_code, diagnostic, bounce.action)


def affected(event: Event) -> tuple[str, ...]:
    """The addresses a feedback event is about."""
    if isinstance(event, Bounced):
        return tuple(a.lower() for a in event.recipients)
    if isinstance(event, Complained):
        return (event.recipient.lower(),) if event.recipient else ()
    return ()


def decide(
    event: Event, address: str, history: SoftHistory, rules: Rules
) -> tuple[Entry | None, SoftHistory]:
    """The entry this feedback adds for `address` (or None), and its new soft history."""
    at = event.occurred_at
    cause = {"address": address, "message_id": event.message_id, "event_id": event.event_id,
             "created_at": at}  # fmt: skip
    if isinstance(event, Complained):
        # a redacted recipient is nobody to suppress; "not-spam" is the opposite of a complaint
        if not rules.suppress_complaints or not address or event.feedback_type == "not-spam":
            return None, history
        return Entry(reason=f"complaint ({event.feedback_type})", source="complaint",
                     **cause), history  # fmt: skip
    if not isinstance(event, Bounced):
        return None, history
    expires = at + rules.bounce_ttl if rules.bounce_ttl else None
    detail = f"{event.status or event.smtp_code or ''} {event.response}".strip()[:300]
    verdict = judge(event, rules)
    if verdict.hard:
        return Entry(reason=f"hard bounce ({verdict.reason}): {detail}", source="bounce",
                     expires_at=expires, **cause), history  # fmt: skip
    if any(seen == event.event_id for seen, _ in history):
        return None, history  # the same bounce again (a redelivery)
    recent = tuple(h for h in history if h[1] > at - rules.soft_bounce_window)
    recent += ((event.event_id, at),)
    if len(recent) < rules.soft_bounce_limit:
        return None, recent
    reason = (f"{len(recent)} soft bounces within {rules.soft_bounce_window}, the last"
              f" ({verdict.reason}): {detail}")  # fmt: skip
    return Entry(reason=reason, source="bounce", expires_at=expires, **cause), ()

"""A DSN result judged by the one bounce classifier (shared.bounce_reasons). Pure.

Deliveries, relays and expansions are not bounces (None); everything else gets a
reason and hard/soft from its status, SMTP reply code, diagnostic and action.
"""

from __future__ import annotations

from services.feedback.dsn import RecipientResult
from shared.bounce_reasons import NOT_BOUNCES, Kind, Verdict, classify


def verdict(result: RecipientResult) -> Verdict | None:
    if result.action in NOT_BOUNCES:
        return None
    return classify(result.status, result.smtp_code, result.diagnostic_code, result.action)


def kind_of(result: RecipientResult) -> Kind | None:
    found = verdict(result)
    return found.kind if found else None

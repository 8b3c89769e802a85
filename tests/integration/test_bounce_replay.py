"""Bounces as they really arrive, end to end: a plain-text bounce (no delivery-status
part) over SMTP to the feedback receiver becomes a hard `bounced` for the right
recipient and puts it on the suppression set; an auto-reply does not. Then a changed
classifier tried on every past bounce: the dry run lists what it would judge and
suppress otherwise, and applying it updates the KV set intake enforces."""

from __future__ import annotations

from pathlib import Path

from nats.aio.client import Client
from nats.js import JetStreamContext

from projections.replay import replay
from projections.runner import build_projections
from services.capture import CaptureSink
from services.cli.replay import kv_follows
from services.feedback.matching import verp_address
from services.feedback.receiver import FeedbackReceiver
from shared.bounce_reasons import Verdict, classify
from shared.eventlog import append
from shared.events import Bounced, event_id_for
from shared.settings import Settings
from shared.suppression_rules import Rules
from tests.conftest import Pipeline, Projector
from tests.eventlog_reader import history, wait_for_any, wait_for_event
from tests.integration.test_feedback_receiver import crlf, deliver, receiver  # noqa: F401
from tests.integration.test_suppression import DONE, listed, send

CORPUS = Path(__file__).parents[1] / "fixtures" / "bounces"


async def test_plain_text_bounce_over_smtp_suppresses_the_recipient(
    pipeline: Pipeline, js: JetStreamContext, sink: CaptureSink,
    receiver: FeedbackReceiver,  # noqa: F811 - the fixture, imported above
    settings: Settings,
) -> None:  # fmt: skip
    mid = await send(js, "gone@example.net")
    await wait_for_event(js, mid, "delivered")
    # a real qmail notice (no delivery-status part), about our recipient
    qmail = (CORPUS / "sisimai-qmail-01.eml").read_bytes()
    about_ours = qmail.replace(b"kijitora@example.ne.jp", b"gone@example.net")
    await deliver(receiver, crlf(about_ours), verp_address(mid, settings.feedback_domain))

    (bounce,) = [e for e in await history(js, mid) if isinstance(e, Bounced)]
    assert bounce.recipients == ("gone@example.net",)
    assert (bounce.kind, bounce.reason, bounce.action, bounce.smtp_code) == (
        "hard", "user_unknown", "failed", 550,
    )  # fmt: skip
    assert "Unknown user gone@example.net" in bounce.evidence
    entry = await listed(js, "gone@example.net")
    assert entry.source == "bounce" and "(user_unknown)" in entry.reason
    again = await send(js, "gone@example.net")
    assert (await wait_for_any(js, again, DONE)).type == "suppressed"

    # an out-of-office reply to the same message is no bounce
    vacation = (CORPUS / "sisimai-rfc3834-01.eml").read_bytes()
    await deliver(receiver, crlf(vacation), verp_address(mid, settings.feedback_domain))
    assert len([e for e in await history(js, mid) if isinstance(e, Bounced)]) == 1


def full_mailbox_is_hard(
    status: str | None, smtp_code: int | None, diagnostic: str | None, action: str | None
) -> Verdict:
    """A changed classifier: a full mailbox now counts against the address."""
    verdict = classify(status, smtp_code, diagnostic, action)
    if verdict.reason == "mailbox_full" and action != "delayed":
        return Verdict(verdict.reason, "hard", verdict.status)
    return verdict


async def test_replay_with_a_changed_classifier_diffs_then_updates_the_kv_set(
    pipeline: Pipeline, projector: Projector, js: JetStreamContext, nc: Client,
    database_url: str,
) -> None:  # fmt: skip
    # a past bounce: a generic 5.0.0 whose text says the mailbox is over quota
    old = "quota-past"
    await append(js, Bounced(
        event_id=event_id_for(old, "bounced"), message_id=old, kind="soft",
        reason="mailbox_full", status="5.0.0", smtp_code=552, action="failed",
        response="552 5.0.0 Mailbox quota exceeded", recipients=("full@example.org",),
        source="dsn",
    ))  # fmt: skip
    await projector.caught_up(js)
    before = await send(js, "full@example.org")
    assert (await wait_for_any(js, before, DONE)).type == "delivered"  # soft: not suppressed

    changed = build_projections(Rules(classifier=full_mailbox_is_hard))["suppressions"]
    dry = await replay(database_url, nc, [changed], dry_run=True)
    assert dry.verdicts == [
        f"~ full@example.org (message {old}): soft (mailbox_full) -> hard (mailbox_full)"
    ]
    assert dry.changes == [
        "+ full@example.org: hard bounce (mailbox_full): 5.0.0 552 5.0.0 Mailbox quota exceeded"
    ]
    again = await send(js, "full@example.org")
    assert (await wait_for_any(js, again, DONE)).type == "delivered"  # a dry run applies nothing

    await replay(database_url, nc, [changed], before_swap=kv_follows(nc, [changed]))
    entry = await listed(js, "full@example.org")
    assert entry.source == "bounce" and entry.message_id == old
    after = await send(js, "full@example.org")
    assert (await wait_for_any(js, after, DONE)).type == "suppressed"  # intake enforces it

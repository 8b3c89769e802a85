"""`POST /v1/webhooks/<provider>`: delivery feedback pushed by providers, recorded as
`bounced` / `complained` / `delivered` events (or `feedback_unmatched`).

No API key: each body proves itself. `generic` bodies carry an HMAC-SHA256 of the
raw body under JETPOST_WEBHOOK_SECRET (`X-Jetpost-Signature: sha256=<hex>`); `ses`
bodies are SNS messages, signed by AWS (services.feedback.sns), from a topic in
JETPOST_SNS_TOPIC_ARNS.

Webhooks come at least once and in any order. Each provider event is claimed in the
`mail_webhook_seen` KV bucket (pending, then done once its events are appended): a
done one is answered as a duplicate without touching the log; any other is first
looked for in the log by its deterministic event id, so a retry after a crash (or
after the bucket's TTL) appends nothing twice. The answer is 200 only once JetStream
has acked every append; 503 while NATS is away, and the provider retries.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import httpx
from litestar import Litestar, Request
from litestar.di import NamedDependency
from litestar.params import FromPath
from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError, NotFoundError
from nats.js.kv import KeyValue
from pydantic import BaseModel

from services.api.problems import Problem, Unavailable
from services.api.routing import post
from services.api.runtime import Runtime
from services.feedback.sns import (
    SnsError,
    SnsMessage,
    SnsRejected,
    SnsUnavailable,
    SnsVerifier,
    confirm_subscription,
    parse_message,
)
from services.feedback.webhook_formats import (
    FeedbackItem,
    FormatError,
    Parsed,
    event_for,
    parse_generic,
    parse_ses,
    resolve,
    unmatched,
)
from shared.consumers import TRANSIENT_ERRORS
from shared.eventlog import append, first_of, last_event
from shared.events import Accepted, Event
from shared.settings import Settings
from shared.subjects import EVT_STREAM, event_subject

log = logging.getLogger("jetpost.api.webhooks")

SEEN_BUCKET = "mail_webhook_seen"
PROVIDERS = ("generic", "ses")
SIGNATURE_HEADER = "X-Jetpost-Signature"
SIGNATURE_CHALLENGE = {
    "WWW-Authenticate": f'HMAC-SHA256 realm="jetpost-webhooks", header="{SIGNATURE_HEADER}"'
}
_SIGNATURE_RE = re.compile(r"^sha256=([0-9a-fA-F]{64})$")
# A provider's delivery report adds nothing once the log has an outcome of its own.
SETTLED = ("delivered", "bounced", "complained", "failed")
Outcome = Literal["recorded", "duplicate", "unchanged", "unmatched"]


class ItemResult(BaseModel):
    id: str  # the provider's event id
    type: str  # bounce, complaint, delivery
    outcome: Outcome
    message_id: str | None = None  # the jetpost message, when matched
    events: list[str] = []  # ids of the events this item stands for


class WebhookReceipt(BaseModel):
    provider: str
    results: list[ItemResult] = []
    ignored: list[str] = []  # parts of the payload not recorded, and why
    sns_type: str | None = None
    confirmed: bool | None = None  # a SubscriptionConfirmation visited (JETPOST_SNS_AUTO_CONFIRM)


@dataclass
class Webhooks:
    """What the webhook routes keep between requests; its HTTP client (for SNS
    certificates and confirmations) is injected by tests, else opened by `lifespan`."""

    settings: Settings
    http: httpx.AsyncClient | None = None
    verifier_: SnsVerifier | None = None
    kv_: KeyValue | None = None
    _client: httpx.AsyncClient | None = field(default=None, repr=False)

    @contextlib.asynccontextmanager
    async def lifespan(self, _: Litestar) -> AsyncIterator[None]:
        client = self.http or httpx.AsyncClient(timeout=self.settings.api_timeout)
        self._client = client
        self.verifier_ = SnsVerifier(client, self.settings.sns_cert_host_patterns)
        try:
            yield
        finally:
            self.verifier_, self._client, self.kv_ = None, None, None
            if self.http is None:
                await client.aclose()

    @property
    def client(self) -> httpx.AsyncClient:
        assert self._client is not None, "the webhooks' lifespan has not started"
        return self._client

    @property
    def verifier(self) -> SnsVerifier:
        assert self.verifier_ is not None, "the webhooks' lifespan has not started"
        return self.verifier_

    async def seen_bucket(self, js: JetStreamContext) -> KeyValue:
        if self.kv_ is None:
            self.kv_ = await js.key_value(SEEN_BUCKET)
        return self.kv_


# Authentication -----------------------------------------------------------------------


def check_signature(settings: Settings, header: str | None, body: bytes) -> None:
    if settings.webhook_secret is None:
        raise Problem(403, "forbidden", "generic webhooks are off: JETPOST_WEBHOOK_SECRET is unset")
    found = _SIGNATURE_RE.match((header or "").strip())
    if found is None:
        raise Problem(401, "unauthorized", f"a {SIGNATURE_HEADER}: sha256=<hex HMAC-SHA256 of "
                      "the body> header is required", headers=SIGNATURE_CHALLENGE)  # fmt: skip
    secret = settings.webhook_secret.get_secret_value().encode()
    expected = hmac.new(secret, body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected.encode(), found.group(1).lower().encode()):
        raise Problem(401, "unauthorized", f"the {SIGNATURE_HEADER} does not match the body",
                      headers=SIGNATURE_CHALLENGE)  # fmt: skip


# Recording --------------------------------------------------------------------------


async def _claim(kv: KeyValue, item: FeedbackItem) -> dict[str, Any] | None:
    """Claim the provider event; when it was recorded before, what was recorded."""
    pending = {"provider": item.provider, "id": item.provider_event_id, "state": "pending"}
    try:
        await kv.create(item.dedup_key, json.dumps(pending).encode())
        return None
    except KeyWrongLastSequenceError:
        pass
    try:
        entry = await kv.get(item.dedup_key)
    except KeyNotFoundError:  # expired or deleted in between: claim it again
        return None
    with contextlib.suppress(ValueError):
        held = json.loads(entry.value or b"{}")
        if isinstance(held, dict) and held.get("state") == "done":
            return held
    return None  # pending: an earlier try stopped half-way, or one runs now


async def _in_log(js: JetStreamContext, event: Event) -> bool:
    """Whether the log has this very event (by id): its subject holds only a few."""
    subject, seq = event_subject(event.message_id, event.type), 1
    while True:
        try:
            stored = await js.get_msg(EVT_STREAM, seq=seq, subject=subject, next=True, direct=True)
        except NotFoundError:
            return False
        with contextlib.suppress(ValueError, AttributeError):
            if json.loads(stored.data or b"{}").get("event_id") == event.event_id:
                return True
        if stored.seq is None:
            return False
        seq = stored.seq + 1


async def _decide(
    js: JetStreamContext, item: FeedbackItem, mail_domain: str, now: datetime
) -> tuple[Outcome, str | None, list[tuple[Event, int]]]:
    message_id = resolve(item, mail_domain)
    if message_id is None:
        reason = "no X-Jetpost-Message-Id, message_id or Message-ID of ours"
        return "unmatched", None, [unmatched(item, reason, now)]
    accepted = await last_event(js, message_id, "accepted")
    if not isinstance(accepted, Accepted):
        return "unmatched", None, [unmatched(item, f"message {message_id} not in the log", now)]
    if item.kind == "delivery" and (held := await first_of(js, message_id, SETTLED)):
        log.info("webhook %s delivery %s: %s is %s already", item.provider,
                 item.provider_event_id, message_id, held)  # fmt: skip
        return "unchanged", message_id, []
    return "recorded", message_id, [event_for(item, message_id, accepted.correlation_id, now)]


async def record(
    js: JetStreamContext, kv: KeyValue, item: FeedbackItem, mail_domain: str
) -> ItemResult:
    """Append what one provider event stands for, once."""
    result = ItemResult(id=item.provider_event_id, type=item.kind, outcome="duplicate")
    if (held := await _claim(kv, item)) is not None:
        log.info("webhook %s %s %s: a duplicate", item.provider, item.kind, item.provider_event_id)
        earlier = [str(e) for e in held.get("events") or ()]
        return result.model_copy(update={"message_id": held.get("message_id"), "events": earlier})
    outcome, message_id, events = await _decide(js, item, mail_domain, datetime.now(UTC))
    for event, n in events:
        if not await _in_log(js, event):
            await append(js, event, n)
        log.info("webhook %s %s %s: %s %s on %s", item.provider, item.kind,
                 item.provider_event_id, outcome, event.type, event.message_id)  # fmt: skip
    ids = [event.event_id for event, _ in events]
    done = {"provider": item.provider, "id": item.provider_event_id, "state": "done",
            "message_id": message_id, "events": ids}  # fmt: skip
    await kv.put(item.dedup_key, json.dumps(done).encode())
    return result.model_copy(update={"outcome": outcome, "message_id": message_id, "events": ids})


async def _record_all(
    rt: Runtime, hooks: Webhooks, provider: str, parsed: Parsed
) -> WebhookReceipt:
    for reason in parsed.ignored:
        log.info("webhook %s: ignored: %s", provider, reason)
    if not rt.bus.connected:
        raise Unavailable("NATS unavailable: not connected")
    results = []
    try:
        kv = await hooks.seen_bucket(rt.bus.js)
        for item in parsed.items:
            results.append(await record(rt.bus.js, kv, item, rt.settings.mail_domain))
    except TRANSIENT_ERRORS as exc:
        raise Unavailable(f"NATS unavailable (webhook): {type(exc).__name__}") from exc
    return WebhookReceipt(provider=provider, results=results, ignored=list(parsed.ignored))


# Providers --------------------------------------------------------------------------


async def _generic(rt: Runtime, hooks: Webhooks, request: Request[Any, Any, Any]) -> WebhookReceipt:
    body = await request.body()
    check_signature(rt.settings, request.headers.get(SIGNATURE_HEADER), body)
    try:
        parsed = parse_generic(body)
    except FormatError as exc:
        raise Problem(400, "invalid-request", str(exc)) from None
    return await _record_all(rt, hooks, "generic", parsed)


async def _ses(rt: Runtime, hooks: Webhooks, request: Request[Any, Any, Any]) -> WebhookReceipt:
    try:
        message = parse_message(await request.body())
    except SnsError as exc:
        raise Problem(400, "invalid-request", f"not an SNS message: {exc}") from None
    announced = request.headers.get("x-amz-sns-message-type")
    if announced is not None and announced != message.type:
        raise Problem(400, "invalid-request", "x-amz-sns-message-type differs from the body's Type")
    topics = rt.settings.sns_topics
    if not topics:
        raise Problem(403, "forbidden", "no SNS topic is trusted: JETPOST_SNS_TOPIC_ARNS is unset")
    if message.topic_arn not in topics:
        log.warning("SNS message from topic %r refused (not in JETPOST_SNS_TOPIC_ARNS)",
                    message.topic_arn)  # fmt: skip
        raise Problem(403, "forbidden", f"topic {message.topic_arn!r} is not trusted")
    try:
        await hooks.verifier.verify(message)
    except SnsRejected as exc:
        log.warning("SNS message %s refused: %s", message.message_id, exc)
        raise Problem(403, "forbidden", f"SNS signature: {exc}") from None
    except SnsUnavailable as exc:
        raise Unavailable(str(exc)) from exc
    receipt = WebhookReceipt(provider="ses", sns_type=message.type)
    if message.type == "SubscriptionConfirmation":
        return await _confirm(rt, hooks, message, receipt)
    if message.type == "UnsubscribeConfirmation":
        log.warning("SNS unsubscribed this endpoint from %s", message.topic_arn)
        return receipt
    try:
        parsed = parse_ses(message.message, notification_id=message.message_id)
    except FormatError as exc:
        raise Problem(400, "invalid-request", str(exc)) from None
    return (await _record_all(rt, hooks, "ses", parsed)).model_copy(
        update={"sns_type": message.type}
    )


async def _confirm(
    rt: Runtime, hooks: Webhooks, message: SnsMessage, receipt: WebhookReceipt
) -> WebhookReceipt:
    if not rt.settings.sns_auto_confirm:
        log.warning("SNS subscription to %s awaits confirmation: open its SubscribeURL %s "
                    "(or set JETPOST_SNS_AUTO_CONFIRM=true)", message.topic_arn,
                    message.subscribe_url)  # fmt: skip
        return receipt.model_copy(update={"confirmed": False})
    try:
        await confirm_subscription(hooks.client, message, rt.settings.sns_cert_host_patterns)
    except SnsRejected as exc:
        raise Problem(403, "forbidden", f"SubscribeURL: {exc}") from None
    except SnsUnavailable as exc:
        raise Unavailable(str(exc)) from exc
    return receipt.model_copy(update={"confirmed": True})


@post(
    "/v1/webhooks/{provider:str}",
    summary="Receive bounce, complaint and delivery reports from a provider",
    description="`generic` (signed with JETPOST_WEBHOOK_SECRET in X-Jetpost-Signature) or "
    "`ses` (Amazon SES notifications through an SNS HTTP(S) subscription). 200 once "
    "the events are stored; duplicates are recognised by the provider's event id.",
    status_code=200,
    tags=["webhooks"],
)
async def receive_webhook(
    rt: NamedDependency[Runtime], request: Request[Any, Any, Any], provider: FromPath[str]
) -> WebhookReceipt:
    hooks: Webhooks = request.app.state["webhooks"]
    if provider == "generic":
        return await _generic(rt, hooks, request)
    if provider == "ses":
        return await _ses(rt, hooks, request)
    raise Problem(404, "not-found", f"no webhook provider {provider!r} ({', '.join(PROVIDERS)})")


ROUTES = [receive_webhook]

"""One trace per message, over a real pipeline (NATS, services, SMTP sink, API,
projections), collected by an in-memory span exporter."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from nats.js import JetStreamContext
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from services.capture import CaptureSink
from services.cli.main import main
from shared.eventlog import append
from shared.events import Complained
from shared.subjects import CMD_SEND, CMD_STREAM
from shared.telemetry import tracing
from tests.conftest import Pipeline, Projector
from tests.eventlog_reader import wait_for_event
from tests.integration.test_api_support import Api, api_fixture

__all__ = ["api_fixture"]


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Requested before the pipeline and the API, so both are built with tracing on."""
    exporter = InMemorySpanExporter()
    tracing.install().add_span_processor(SimpleSpanProcessor(exporter))
    yield exporter
    exporter.shutdown()  # the processor stays (one provider per process); it drops spans


class Tree:
    """The finished spans of one trace, by name and parent."""

    def __init__(self, exporter: InMemorySpanExporter, trace_id: int) -> None:
        self.spans = [s for s in exporter.get_finished_spans() if s.context.trace_id == trace_id]

    def named(self, name: str) -> list[ReadableSpan]:
        return [s for s in self.spans if s.name == name]

    def one(self, name: str) -> ReadableSpan:
        found = self.named(name)
        assert len(found) == 1, (name, [s.name for s in self.spans])
        return found[0]

    def children(self, parent: ReadableSpan) -> list[ReadableSpan]:
        return sorted(
            (s for s in self.spans if s.parent and s.parent.span_id == parent.context.span_id),
            key=lambda s: s.start_time or 0,
        )

    def child(self, parent: ReadableSpan, name: str) -> ReadableSpan:
        found = [s for s in self.children(parent) if s.name == name]
        assert len(found) == 1, (name, [s.name for s in self.children(parent)])
        return found[0]


def pipeline_under(tree: Tree, command: ReadableSpan, mid: str) -> list[ReadableSpan]:
    """command publish -> intake -> accepted -> renderer -> rendered -> sender tries."""
    intake = tree.child(command, "mail.cmd.send process")
    assert intake.kind == SpanKind.CONSUMER
    accepted = tree.child(intake, "append accepted")
    renderer = tree.child(accepted, f"mail.evt.{mid}.accepted process")
    rendered = tree.child(renderer, "append rendered")
    tries = [s for s in tree.children(rendered) if s.name == f"mail.evt.{mid}.rendered process"]
    return tries


def smtp_of(tree: Tree, attempt: ReadableSpan, outcome: str, code: int) -> None:
    names = [s.name for s in tree.children(attempt)]
    assert names == ["append attempted", "smtp sendmail", f"append {outcome}"], names
    smtp = tree.child(attempt, "smtp sendmail")
    assert smtp.kind == SpanKind.CLIENT
    attributes = dict(smtp.attributes or {})
    assert attributes["smtp.reply_code"] == code
    assert attributes["server.address"] == "127.0.0.1"
    assert attributes["jetpost.provider"] == "smtp"


async def test_a_message_sent_through_the_api_is_one_trace_to_its_delivery(
    spans: InMemorySpanExporter,
    api: Api,
    projector: Projector,
    js: JetStreamContext,
    database_url: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    response = await api.client.post(
        "/v1/messages",
        headers=await api.as_("send"),
        json={"to": "alice@example.com", "subject": "Hi", "text": "Hello"},
    )
    assert response.status_code == 202, response.text
    mid = response.json()["id"]
    await wait_for_event(js, mid, "delivered")

    publish = [s for s in spans.get_finished_spans() if s.name == "mail.cmd.send publish"]
    assert len(publish) == 1
    tree = Tree(spans, publish[0].context.trace_id)
    assert publish[0].parent is not None
    request = next(s for s in tree.spans if s.context.span_id == publish[0].parent.span_id)
    assert request.kind == SpanKind.SERVER and "POST" in request.name
    (attempt,) = pipeline_under(tree, publish[0], mid)
    smtp_of(tree, attempt, "delivered", 250)

    # feedback from outside (a DSN, a webhook, a tracking hit) joins the message's trace
    complaint = Complained(event_id=uuid.uuid4().hex, message_id=mid, recipient="alice@example.com")
    await append(js, complaint)
    feedback = Tree(spans, publish[0].context.trace_id).one("append complained")
    assert feedback.parent is not None
    assert feedback.parent.span_id == tree.child(tree.child(publish[0], "mail.cmd.send process"),
                                                 "append accepted").context.span_id  # fmt: skip

    # the read model keeps the trace id, and `jetpost inspect` shows it
    trace_id = format(publish[0].context.trace_id, "032x")
    await projector.caught_up(js)
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        cur = await conn.execute("SELECT trace_id FROM messages WHERE id = %s", (mid,))
        assert await cur.fetchone() == (trace_id,)
    got = await api.client.get(f"/v1/messages/{mid}", headers=await api.as_("read"))
    assert got.json()["trace_id"] == trace_id
    monkeypatch.setenv("JETPOST_NATS_URL", api.settings.nats_address)
    capsys.readouterr()
    assert await asyncio.to_thread(main, ["inspect", mid]) == 0
    assert f"trace {trace_id}" in capsys.readouterr().err


async def test_a_deferred_then_delivered_message_is_one_trace_with_two_attempts(
    spans: InMemorySpanExporter, pipeline: Pipeline, js: JetStreamContext, sink: CaptureSink
) -> None:
    sink.script(["451 4.3.0 try again later"])
    mid = uuid.uuid4().hex
    command = {"to": "bob@example.com", "subject": "Hi", "text": "Hello", "message_id": mid}
    headers: dict[str, str] = {}
    with tracing.producer_span("mail.cmd.send publish", headers):  # a NATS client's publish
        await js.publish(CMD_SEND, json.dumps(command).encode(), stream=CMD_STREAM,
                         headers=headers)  # fmt: skip
    await wait_for_event(js, mid, "delivered")

    root = [s for s in spans.get_finished_spans() if s.name == "mail.cmd.send publish"][-1]
    tree = Tree(spans, root.context.trace_id)
    assert root.parent is None
    first, second = pipeline_under(tree, root, mid)
    smtp_of(tree, first, "deferred", 451)
    smtp_of(tree, second, "delivered", 250)

"""Every service as its own process serves /metrics on JETPOST_METRICS_PORT; scraped
before and after mail goes through, its counters have moved."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from pathlib import Path
from subprocess import Popen

import httpx
import pytest
from nats.js import JetStreamContext
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from services.capture import CaptureSink
from shared.embedded import free_port
from shared.settings import Settings
from shared.subjects import CMD_SEND, CMD_STREAM
from tests.conftest import Pipeline, service_env
from tests.eventlog_reader import wait_for_event

N = 3
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sum of the samples of `name` whose labels include `labels`."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= ls)


async def scrape(client: httpx.AsyncClient, port: int, timeout: float = 90.0) -> Samples:
    """The process's metrics, once it serves them (start-up takes a while on a busy box)."""
    async with asyncio.timeout(timeout):
        while True:
            try:
                response = await client.get(f"http://127.0.0.1:{port}/metrics")
                if response.status_code == 200:
                    return parse(response.text)
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)


async def until(client: httpx.AsyncClient, port: int, check: Callable[[Samples], bool]) -> Samples:
    """Bounded polling of a process's metrics until `check` holds."""
    async with asyncio.timeout(30):
        while True:
            samples = await scrape(client, port)
            if check(samples):
                return samples
            await asyncio.sleep(0.2)


@pytest.mark.slow
async def test_each_service_process_serves_metrics_that_move(
    settings: Settings,
    js: JetStreamContext,
    sink: CaptureSink,
    database_url: str,
    spawn: Callable[..., Popen[bytes]],
    tmp_path: Path,
) -> None:
    ports: dict[str, int] = {}
    for service in ("intake", "renderer", "sender", "projections"):
        ports[service] = free_port()
        env = service_env(settings) | {
            "JETPOST_METRICS_PORT": str(ports[service]),
            "JETPOST_METRICS_INTERVAL": "0.2",
            "JETPOST_DATABASE_URL": database_url,
        }
        spawn(["run", service], env, tmp_path / f"{service}.log")
    async with httpx.AsyncClient(timeout=5) as client:
        before = {name: await scrape(client, port) for name, port in ports.items()}
        ids = [uuid.uuid4().hex for _ in range(N)]
        for mid in ids:
            command = {"to": f"{mid[:8]}@example.com", "subject": "Hi", "text": "Hello",
                       "message_id": mid}  # fmt: skip
            await js.publish(CMD_SEND, json.dumps(command).encode(), stream=CMD_STREAM)
        for mid in ids:
            await wait_for_event(js, mid, "delivered", timeout=60)

        def moved(service: str, name: str, **labels: str) -> Callable[[Samples], bool]:
            start = value(before[service], name, **labels)
            return lambda now: value(now, name, **labels) - start >= N

        appended = "jetpost_events_appended_total"
        intake = await until(client, ports["intake"], moved("intake", appended, type="accepted"))
        assert value(intake, "faststream_received_messages_total") >= N  # FastStream's own
        await until(client, ports["renderer"], moved("renderer", appended, type="rendered"))
        sender = await until(client, ports["sender"], moved(
            "sender", "jetpost_messages_total", outcome="delivered", provider="smtp",
            domain="example.com"))  # fmt: skip
        assert value(sender, "jetpost_smtp_seconds_count", host="127.0.0.1", result="2xx") >= N
        # queue depth per durable, polled from NATS: the sender's queue is drained
        sender = await until(
            client, ports["sender"],
            lambda s: ("jetpost_consumer_pending", frozenset({("stream", "MAIL_EVT"),
                                                              ("durable", "sender")})) in s
            and value(s, "jetpost_consumer_ack_pending", durable="sender") == 0,
        )  # fmt: skip
        # the projections process reports its lag, down to 0 once it has caught up
        await until(
            client, ports["projections"],
            lambda s: any(n == "jetpost_projection_lag" for n, _ in s)
            and value(s, "jetpost_projection_lag") == 0,
        )  # fmt: skip
    assert len(sink.received) == N


async def test_outcomes_of_any_provider_carry_the_recipient_domain(
    pipeline: Pipeline, js: JetStreamContext
) -> None:
    """Not only SMTP: the `log` provider's outcome is labelled with the recipient's domain."""
    await pipeline.stop()
    await pipeline.start(providers="log://")
    domain = f"d{uuid.uuid4().hex[:8]}.example.org"
    mid = uuid.uuid4().hex
    command = {"to": f"ann@{domain}", "subject": "Hi", "text": "Hello", "message_id": mid}
    await js.publish(CMD_SEND, json.dumps(command).encode(), stream=CMD_STREAM)
    await wait_for_event(js, mid, "delivered")
    labels = {"outcome": "delivered", "provider": "log", "domain": domain}
    assert REGISTRY.get_sample_value("jetpost_messages_total", labels) == 1


async def test_consume_metrics_are_by_subject_pattern_not_one_series_per_mail(
    pipeline: Pipeline, js: JetStreamContext
) -> None:
    """An event's subject carries its message id: labelled by subject, every mail would
    add time series for ever (FastStream's default; a leak found in the e2e profile)."""
    mid = uuid.uuid4().hex
    command = {"to": "ann@example.org", "subject": "Hi", "text": "Hello", "message_id": mid}
    await js.publish(CMD_SEND, json.dumps(command).encode(), stream=CMD_STREAM)
    await wait_for_event(js, mid, "delivered")
    labels = [
        value
        for family in REGISTRY.collect()
        for sample in family.samples
        for value in sample.labels.values()
    ]
    assert not [v for v in labels if mid in v]
    assert "mail.evt.*.rendered" in labels  # the sender consumed `rendered`, by pattern

"""`jetpost run webhooks`: follows the endpoint events in MAIL_EVT and keeps one durable
consumer and one worker per enabled endpoint (plus one per replay under way),
reconciled at start-up and after every change. Endpoints that are disabled keep
their consumer (and its position); deleted ones lose it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime
from functools import partial

import nats.errors
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from services.webhooks.catalog import event_type
from services.webhooks.endpoint_log import EndpointLog
from services.webhooks.endpoints import Endpoint, Replay, fold_all
from services.webhooks.post import Poster
from services.webhooks.recorder import Recorder
from services.webhooks.secrets import SecretBox
from services.webhooks.ssrf import Resolver, system_resolver
from services.webhooks.worker import Deps, MailCache, Worker
from shared.eventlog import append
from shared.events import WebhookEndpointDisabled, WebhookReplayFinished, event_id_for
from shared.nats_connect import connect
from shared.nats_setup import apply_definitions, load_definitions
from shared.settings import ConfigError, Settings
from shared.subjects import EVT_STREAM, event_filter

log = logging.getLogger("jetpost.webhooks")
PREFIX = "webhook_"


def durable_name(endpoint_id: str, replay: Replay | None = None) -> str:
    return PREFIX + endpoint_id + (f"_replay_{replay.replay_id}" if replay else "")


def consumer_config(
    endpoint: Endpoint, replay: Replay | None, ack_wait: float, replicas: int = 1
) -> ConsumerConfig:
    start: dict[str, object] = {"deliver_policy": DeliverPolicy.BY_START_SEQUENCE,
                                "opt_start_seq": endpoint.start_seq}  # fmt: skip
    if replay is not None and replay.since is not None:
        start = {"deliver_policy": DeliverPolicy.BY_START_TIME, "opt_start_time": replay.since}
    elif replay is not None:
        start["opt_start_seq"] = replay.start_seq
    return ConsumerConfig(
        durable_name=durable_name(endpoint.id, replay),
        description=f"webhooks to {endpoint.url}"[:200],
        filter_subjects=sorted(event_filter(event_type(t)) for t in endpoint.events),
        ack_policy=AckPolicy.EXPLICIT,  # acked only once the attempt is recorded
        ack_wait=ack_wait, max_deliver=-1, max_ack_pending=20_000, num_replicas=replicas,
        **start,  # type: ignore[arg-type]
    )  # fmt: skip


class Webhooks:
    def __init__(self, settings: Settings, js: JetStreamContext, deps: Deps) -> None:
        self.settings, self.js, self.deps = settings, js, deps
        self.endpoints: dict[str, Endpoint] = {}
        self.workers: dict[str, Worker] = {}
        self.applied: dict[str, ConsumerConfig] = {}
        self.ack_wait = max(60.0, settings.webhook_timeout * 3)

    def wanted(self) -> dict[str, tuple[Endpoint, Replay | None]]:
        out: dict[str, tuple[Endpoint, Replay | None]] = {}
        for endpoint in self.endpoints.values():
            if endpoint.enabled:
                out[durable_name(endpoint.id)] = (endpoint, None)
                for replay in endpoint.replays:
                    out[durable_name(endpoint.id, replay)] = (endpoint, replay)
        return out

    async def reconcile(self) -> None:
        wanted = self.wanted()
        kept = {durable_name(e) for e in self.endpoints}  # disabled: keep the position
        for name in [n for n in self.workers if n not in wanted]:
            await self.workers.pop(name).stop()
        for name in await self.consumer_names():
            if name.startswith(PREFIX) and name not in wanted and name not in kept:
                with contextlib.suppress(NotFoundError):
                    await self.js.delete_consumer(EVT_STREAM, name)
                self.applied.pop(name, None)
                log.info("removed consumer %s", name)
        for name, (endpoint, replay) in wanted.items():
            config = consumer_config(endpoint, replay, self.ack_wait, self.settings.nats_replicas)
            if self.applied.get(name) != config:
                await self.js.add_consumer(EVT_STREAM, config)
                self.applied[name] = config
            worker = self.workers.get(name)
            crashed = replay is None and worker is not None and worker.done()
            if worker is None or crashed:
                worker = self.workers[name] = Worker(self.deps, endpoint, name, replay)
                worker.start()
                if replay is not None and worker.task is not None:
                    worker.task.add_done_callback(partial(self._replay_ended, endpoint, replay))
            worker.endpoint = endpoint

    async def consumer_names(self) -> list[str]:
        """Every consumer on MAIL_EVT (the server lists 256 a page)."""
        names: list[str] = []
        while page := await self.js.consumers_info(EVT_STREAM, offset=len(names)):
            names += [info.name for info in page]
            if len(page) < 256:
                break
        return names

    def _replay_ended(self, endpoint: Endpoint, replay: Replay, task: asyncio.Task[bool]) -> None:
        if not task.cancelled() and task.exception() is None and task.result():
            asyncio.get_running_loop().create_task(self.finish_replay(endpoint, replay))

    async def finish_replay(self, endpoint: Endpoint, replay: Replay) -> None:
        event = WebhookReplayFinished(
            event_id=event_id_for(endpoint.id, "webhook_replay_finished", replay.requested_seq),
            message_id=endpoint.id, correlation_id=endpoint.id, replay_id=replay.replay_id,
        )  # fmt: skip
        try:
            await append(self.js, event, replay.requested_seq)
        except (nats.errors.Error, TimeoutError) as exc:
            log.warning("replay %s: not marked finished: %r", replay.replay_id, exc)
        log.info("replay %s to %s finished", replay.replay_id, endpoint.url)

    async def disable(self, endpoint: Endpoint, failing_since: datetime) -> None:
        if not self.endpoints.get(endpoint.id, endpoint).enabled:
            return
        n = int(failing_since.timestamp())
        await append(self.js, WebhookEndpointDisabled(
            event_id=event_id_for(endpoint.id, "webhook_endpoint_disabled", n),
            message_id=endpoint.id, correlation_id=endpoint.id, failing_since=failing_since,
            reason=f"failing without a success since {failing_since.isoformat()}",
        ), n)  # fmt: skip
        log.warning("disabled webhook endpoint %s (%s): failing since %s", endpoint.id,
                    endpoint.url, failing_since.isoformat())  # fmt: skip

    async def close(self) -> None:
        await asyncio.gather(*(w.stop() for w in self.workers.values()))
        self.workers.clear()


async def follow(hooks: Webhooks, stop: asyncio.Event, started: asyncio.Event | None) -> None:
    reader = EndpointLog(hooks.js)
    caught_up, dirty = False, True
    try:
        while not stop.is_set():
            items, now_caught_up = await reader.read(timeout=0.5 if caught_up else 0.2)
            if items:
                hooks.endpoints = fold_all(items, hooks.endpoints)
                dirty = True
            caught_up = caught_up or now_caught_up
            if caught_up and dirty:
                try:
                    await hooks.reconcile()
                    dirty = False
                except (nats.errors.Error, TimeoutError) as exc:
                    log.warning("webhook consumers not reconciled, retrying: %r", exc)
                if started is not None and not started.is_set():
                    started.set()
                    log.info("webhooks: %d endpoint(s)", len(hooks.endpoints))
    finally:
        await reader.close()


async def run_webhooks(
    settings: Settings,
    stop: asyncio.Event,
    started: asyncio.Event | None = None,
    resolver: Resolver = system_resolver,
) -> None:
    if not settings.database_url:
        raise ConfigError("JETPOST_DATABASE_URL: required to run webhooks (delivery log)")
    box = SecretBox.from_settings(settings)
    nc = await connect(settings, name="jetpost-webhooks")
    poster = Poster(settings.webhook_allow_private, settings.webhook_timeout, resolver)
    recorder = Recorder(settings.database_url)
    recorder.start()
    hooks: Webhooks | None = None
    try:
        js = nc.jetstream()
        await apply_definitions(js, load_definitions(settings))

        async def disable(endpoint: Endpoint, since: datetime) -> None:
            assert hooks is not None
            await hooks.disable(endpoint, since)

        deps = Deps(
            js=js, poster=poster, recorder=recorder, box=box, mails=MailCache(js),
            delays=settings.webhook_delays, disable_after=settings.webhook_disable_after,
            concurrency=settings.webhook_concurrency, disable=disable,
        )  # fmt: skip
        hooks = Webhooks(settings, js, deps)
        await follow(hooks, stop, started)
    finally:
        if hooks is not None:
            await hooks.close()
        await recorder.close()
        await poster.close()
        await nc.close()

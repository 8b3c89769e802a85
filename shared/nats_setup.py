"""Apply the JetStream definitions in nats/jetstream.yaml: create what is missing,
update in place what may safely change.

Run by every service at start-up, so any process can come up first; applying the
same definitions twice changes nothing. Streams, consumers, KV buckets and object
stores get JETPOST_NATS_REPLICAS replicas (the attachments store JETPOST_RETENTION_DAYS
as max age); what start-up will not change on a live stream (fewer replicas, other
storage, a dropped subject: see shared/nats_plan.py) is logged and left to
`jetpost streams --apply`.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import yaml
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, KeyValueConfig, ObjectStoreConfig, StreamConfig
from nats.js.errors import BadRequestError, NotFoundError

from shared.nats_plan import Difference, Plan, plan
from shared.settings import Settings

log = logging.getLogger("jetpost.nats")


@dataclass(frozen=True)
class Definitions:
    streams: list[StreamConfig]
    consumers: list[tuple[str, ConsumerConfig]]
    key_values: list[KeyValueConfig] = field(default_factory=list)
    object_stores: list[ObjectStoreConfig] = field(default_factory=list)

    def consumer(self, durable: str) -> tuple[str, ConsumerConfig]:
        for stream, config in self.consumers:
            if config.durable_name == durable:
                return stream, config
        raise KeyError(f"no consumer {durable!r} in nats/jetstream.yaml")


_NS = 1_000_000_000
_DURATIONS = ("max_age", "duplicate_window", "ack_wait", "idle_heartbeat", "inactive_threshold")


def _from_seconds(raw: dict[str, Any]) -> dict[str, Any]:
    """The YAML speaks seconds; nats-py's from_response expects the server's nanoseconds."""
    out = dict(raw)
    for key in _DURATIONS:
        if out.get(key) is not None:
            out[key] = int(out[key] * _NS)
    if out.get("backoff"):
        out["backoff"] = [int(v * _NS) for v in out["backoff"]]
    return out


def load_definitions(settings: Settings) -> Definitions:
    data: dict[str, Any] = yaml.safe_load((settings.nats_dir / "jetstream.yaml").read_text())
    overrides = {"MAIL_CMD": settings.cmd_max_age, "MAIL_EVT": settings.evt_max_age}
    streams = []
    for raw in data.get("streams", []):
        if overrides.get(raw["name"]) is not None:
            raw = {**raw, "max_age": overrides[raw["name"]]}
        raw = {**raw, "num_replicas": settings.nats_replicas}
        streams.append(StreamConfig.from_response(_from_seconds(raw)))
    consumers = []
    for raw in data.get("consumers", []):
        if settings.ack_wait is not None:
            raw = {**raw, "ack_wait": settings.ack_wait}
        raw = {**raw, "num_replicas": settings.nats_replicas}
        stream = raw.pop("stream")
        consumers.append((stream, ConsumerConfig.from_response(_from_seconds(raw))))
    kvs = []
    for raw in data.get("key_value", []):
        if raw["bucket"] == "mail_idempotency":
            raw = {**raw, "ttl": settings.idempotency_ttl}
        raw = {**raw, "replicas": settings.nats_replicas}
        kvs.append(KeyValueConfig(**raw))
    # Attachments follow the read models' retention (JETPOST_RETENTION_DAYS; unset: kept).
    ttl = settings.retention_days * 86400 if settings.retention_days else None
    objects = [ObjectStoreConfig(**{**raw, "ttl": ttl, "replicas": settings.nats_replicas})
               for raw in data.get("object_stores", [])]  # fmt: skip
    return Definitions(streams=streams, consumers=consumers, key_values=kvs,
                       object_stores=objects)  # fmt: skip


async def _api(js: JetStreamContext, what: str, payload: dict[str, Any] | None = None) -> Any:
    """A raw JetStream API call: live configs are read and written as the server's own
    JSON, so fields this client does not know survive an update untouched."""
    data = json.dumps(payload).encode() if payload is not None else b""
    return await js._api_request(f"{js._prefix}.{what}", data, timeout=js._timeout)


def _report(plan: Plan, dry_run: bool) -> Plan:
    for change in plan.changes:
        if not dry_run:
            log.info("applied: %s", change)
    for held in plan.held:
        log.warning("not applied: %s", held)
    return plan


async def _live_stream(js: JetStreamContext, name: str) -> dict[str, Any] | None:
    try:
        info = await _api(js, f"STREAM.INFO.{name}")
    except NotFoundError:
        return None
    return dict(info["config"])


async def _apply_stream(
    js: JetStreamContext, name: str, wanted: dict[str, Any], create: Callable[[], Awaitable[Any]],
    force: bool, dry_run: bool,
) -> Plan:  # fmt: skip
    what = f"stream {name}"
    live = await _live_stream(js, name)
    if live is None:
        created = Plan(what, wanted, [Difference(what, "created", None, "")])
        if dry_run:
            return created
        try:
            await create()
            return created
        except BadRequestError as exc:
            if exc.err_code != 10058:  # created meanwhile by another process, otherwise
                raise
            live = await _live_stream(js, name)
            assert live is not None
    result = _report(plan(what, live, wanted, force=force), dry_run)
    if result.changed and not dry_run:
        await _api(js, f"STREAM.UPDATE.{name}", result.config)
    return result


async def _apply_consumer(
    js: JetStreamContext, stream: str, config: ConsumerConfig, force: bool, dry_run: bool
) -> Plan:
    durable = config.durable_name or ""
    what = f"consumer {stream}/{durable}"
    wanted = config.as_dict()
    try:
        live = dict((await _api(js, f"CONSUMER.INFO.{stream}.{durable}"))["config"])
    except NotFoundError:
        if not dry_run:
            await js.add_consumer(stream, config)
        return Plan(what, wanted, [Difference(what, "created", None, "")])
    if not live.get("num_replicas"):  # 0: as many as the stream has
        stream_live = await _live_stream(js, stream)
        live["num_replicas"] = (stream_live or {}).get("num_replicas", 1)
    result = _report(plan(what, live, wanted, force=force), dry_run)
    if result.changed and not dry_run:
        request = {"stream_name": stream, "config": result.config, "action": "update"}
        await _api(js, f"CONSUMER.CREATE.{stream}.{durable}", request)
    return result


def _bucket_wanted(config: KeyValueConfig | ObjectStoreConfig) -> dict[str, Any]:
    """The backing stream's fields a bucket definition (KV or object store) sets."""
    wanted: dict[str, Any] = {
        "num_replicas": config.replicas,
        "storage": str(getattr(config.storage, "value", config.storage)),
        "max_age": int((config.ttl or 0) * _NS),
    }
    if isinstance(config, KeyValueConfig):
        wanted["max_msgs_per_subject"] = config.history
        if config.direct:  # read by direct gets (any replica answers)
            wanted["allow_direct"] = True
    if config.description:
        wanted["description"] = config.description
    return wanted


async def apply_definitions(
    js: JetStreamContext, definitions: Definitions, *, force: bool = False, dry_run: bool = False
) -> list[Plan]:
    """Create what is missing and apply safe changes; log every difference held back.

    `force` (`jetpost streams --apply`) also lowers replicas and drops subjects;
    `dry_run` changes nothing and returns what would be done.
    """
    plans = []
    for stream in definitions.streams:
        create: Callable[[], Awaitable[Any]] = functools.partial(js.add_stream, stream)
        wanted = stream.as_dict()
        plans.append(await _apply_stream(js, stream.name or "", wanted, create, force, dry_run))
    for stream_name, consumer in definitions.consumers:
        plans.append(await _apply_consumer(js, stream_name, consumer, force, dry_run))
    for kv in definitions.key_values:
        create = functools.partial(js.create_key_value, kv)
        name = f"KV_{kv.bucket}"
        plans.append(await _apply_stream(js, name, _bucket_wanted(kv), create, force, dry_run))
    for store in definitions.object_stores:
        create = functools.partial(js.create_object_store, store.bucket or "", config=store)
        name = f"OBJ_{store.bucket}"
        plans.append(await _apply_stream(js, name, _bucket_wanted(store), create, force, dry_run))
    return plans

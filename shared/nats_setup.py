"""Apply the JetStream definitions in nats/jetstream.yaml: create, or update in place.

Run by every service at start-up, so any process can come up first; applying the
same definitions twice changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, KeyValueConfig, ObjectStoreConfig, StreamConfig
from nats.js.errors import BadRequestError, BucketNotFoundError

from shared.settings import Settings


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
        streams.append(StreamConfig.from_response(_from_seconds(raw)))
    consumers = []
    for raw in data.get("consumers", []):
        if settings.ack_wait is not None:
            raw = {**raw, "ack_wait": settings.ack_wait}
        stream = raw.pop("stream")
        consumers.append((stream, ConsumerConfig.from_response(_from_seconds(raw))))
    kvs = []
    for raw in data.get("key_value", []):
        if raw["bucket"] == "mail_idempotency":
            raw = {**raw, "ttl": settings.idempotency_ttl}
        kvs.append(KeyValueConfig(**raw))
    objects = [ObjectStoreConfig(**raw) for raw in data.get("object_stores", [])]
    return Definitions(streams=streams, consumers=consumers, key_values=kvs,
                       object_stores=objects)  # fmt: skip


async def _apply_stream(js: JetStreamContext, config: StreamConfig) -> None:
    try:
        await js.add_stream(config)
    except BadRequestError as exc:
        if exc.err_code != 10058:  # stream name already in use with a different configuration
            raise
        await js.update_stream(config)


async def _apply_kv(js: JetStreamContext, config: KeyValueConfig) -> None:
    try:
        await js.key_value(config.bucket)
    except BucketNotFoundError:
        await js.create_key_value(config)


async def apply_definitions(js: JetStreamContext, definitions: Definitions) -> None:
    for stream in definitions.streams:
        await _apply_stream(js, stream)
    for stream_name, consumer in definitions.consumers:
        await js.add_consumer(stream_name, consumer)
    for kv in definitions.key_values:
        await _apply_kv(js, kv)
    for store in definitions.object_stores:
        try:
            await js.object_store(store.bucket or "")
        except BucketNotFoundError:
            await js.create_object_store(store.bucket or "", config=store)

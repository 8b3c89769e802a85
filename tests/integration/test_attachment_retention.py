"""Attachments follow JETPOST_RETENTION_DAYS: the `mail_attachments` object store's
backing stream gets that max age when created, an existing store gets it applied in
place (its objects kept), and a retention that does not outlive JETPOST_MAX_SCHEDULE
is refused at start-up. Real nats-server."""

from __future__ import annotations

import pytest
from nats.aio.client import Client

from services.cli.main import main
from shared.attachments import BUCKET
from shared.nats_setup import apply_definitions, load_definitions
from shared.settings import ConfigError, Settings, load_settings

STREAM = f"OBJ_{BUCKET}"
DAY = 86400


async def test_a_new_store_gets_the_retention_as_max_age(nc: Client, settings: Settings) -> None:
    js = nc.jetstream()
    await apply_definitions(js, load_definitions(settings.model_copy(
        update={"retention_days": 45.0})))  # fmt: skip
    assert (await js.stream_info(STREAM)).config.max_age == 45 * DAY


async def test_an_existing_store_gets_it_applied_and_keeps_its_objects(
    nc: Client, settings: Settings
) -> None:
    js = nc.jetstream()
    await apply_definitions(js, load_definitions(settings))  # no retention: kept forever
    assert not (await js.stream_info(STREAM)).config.max_age
    store = await js.object_store(BUCKET)
    await store.put("kept", b"attachment bytes")

    kept = load_definitions(settings.model_copy(update={"retention_days": 31.0}))
    preview = await apply_definitions(js, kept, dry_run=True)
    assert not (await js.stream_info(STREAM)).config.max_age  # a dry run changes nothing
    plans = await apply_definitions(js, kept)
    changes = [str(c) for p in plans for c in p.changes]
    assert changes == [str(c) for p in preview for c in p.changes]
    assert changes == [f"stream {STREAM}: max_age 0 -> {31 * DAY * 10**9}"]
    info = await js.stream_info(STREAM)
    assert info.config.max_age == 31 * DAY and info.config.allow_rollup_hdrs
    assert (await store.get("kept")).data == b"attachment bytes"
    again = await apply_definitions(js, kept)  # applied once: nothing left to change
    assert [c for p in again for c in p.changes] == []


def test_a_retention_shorter_than_the_schedule_is_refused(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(ConfigError) as refused:
        load_settings(retention_days=30, max_schedule=30 * DAY)
    message = str(refused.value)
    assert "JETPOST_RETENTION_DAYS" in message and "JETPOST_MAX_SCHEDULE" in message
    assert "\n" not in message
    assert load_settings(retention_days=8, max_schedule=7 * DAY).retention_days == 8

    monkeypatch.setenv("JETPOST_RETENTION_DAYS", "7")  # the default schedule: 30 days
    assert main(["run", "scheduler"]) == 2  # refused before connecting to anything
    err = capsys.readouterr().err.strip()
    assert "JETPOST_RETENTION_DAYS (7 days) must exceed JETPOST_MAX_SCHEDULE (30 days)" in err
    assert len(err.splitlines()) == 1, err

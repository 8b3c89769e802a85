"""`jetpost tap` and `jetpost inspect` as child processes against the real pipeline."""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import nats
import pytest
from nats.js import JetStreamContext

from services.sender.ops import OpsPublisher
from shared.embedded import EmbeddedNats
from shared.settings import Settings
from shared.subjects import EVT_STREAM
from tests.conftest import JETPOST, Pipeline, service_env
from tests.eventlog_reader import wait_for_event
from tests.integration.test_pipeline import send, welcome

LIFE = ["accepted", "rendered", "attempted", "delivered"]
WAIT = 30.0

Process = asyncio.subprocess.Process
Start = Callable[..., Awaitable[Process]]


@pytest.fixture
async def start(settings: Settings) -> AsyncIterator[Start]:
    """Start `jetpost ...` with pipes; every child still running at the end is stopped."""
    children: list[Process] = []

    async def run(*args: str) -> Process:
        child = await asyncio.create_subprocess_exec(
            JETPOST, *args, env=service_env(settings),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        children.append(child)
        return child

    yield run
    for child in children:
        if child.returncode is None:
            child.terminate()
            try:
                await asyncio.wait_for(child.wait(), 10)
            except TimeoutError:
                child.kill()
                await child.wait()


async def finish(child: Process) -> tuple[int, list[str], str]:
    """Wait (bounded) for a child to exit: its status, stdout lines and stderr."""
    out, err = await asyncio.wait_for(child.communicate(), WAIT)
    assert child.returncode is not None
    return child.returncode, out.decode().splitlines(), err.decode()


async def run_json(start: Start, *args: str) -> list[dict[str, Any]]:
    code, lines, err = await finish(await start(*args, "--json"))
    assert code == 0, err
    return [json.loads(line) for line in lines]


async def wait_tapping(child: Process) -> None:
    """Until the tap says it is subscribed (its first line on stderr)."""
    assert child.stderr is not None
    seen = b""
    while b"tapping" not in seen:
        line = await asyncio.wait_for(child.stderr.readline(), WAIT)
        assert line, f"tap exited before subscribing: {seen.decode()}"
        seen += line


async def read_json(child: Process, n: int) -> list[dict[str, Any]]:
    assert child.stdout is not None
    lines = [await asyncio.wait_for(child.stdout.readline(), WAIT) for _ in range(n)]
    return [json.loads(line) for line in lines]


async def delivered_message(js: JetStreamContext) -> str:
    command = welcome()
    await send(js, command)
    await wait_for_event(js, command["message_id"], "delivered")
    return str(command["message_id"])


async def test_inspect_and_tap_read_the_log(
    pipeline: Pipeline, js: JetStreamContext, start: Start
) -> None:
    mid = await delivered_message(js)

    timeline = await run_json(start, "inspect", mid)
    assert [e["type"] for e in timeline] == LIFE
    assert all(e["message_id"] == mid for e in timeline)
    assert [e["nats_subject"] for e in timeline] == [f"mail.evt.{mid}.{t}" for t in LIFE]
    assert "Alice" in timeline[1]["subject"]  # the mail's subject, kept
    seqs = [e["seq"] for e in timeline]
    assert seqs == sorted(seqs) and len(set(seqs)) == 4

    everything = await run_json(start, "tap", "--all", "--limit", "4")
    assert [(e["type"], e["seq"]) for e in everything] == list(zip(LIFE, seqs, strict=True))

    [delivered] = await run_json(start, "tap", "--type", "delivered", "--all", "--limit", "1")
    assert delivered["type"] == "delivered" and delivered["message_id"] == mid
    assert delivered["smtp_code"] == 250 and delivered["seq"] == seqs[3]

    two = await run_json(start, "tap", "--type", "accepted", "--type", "delivered", "--all",
                         "--limit", "2")  # fmt: skip
    assert [e["type"] for e in two] == ["accepted", "delivered"]

    recent = await run_json(start, "tap", "--since", "1h", "--message", mid, "--limit", "4")
    assert [e["type"] for e in recent] == LIFE

    [from_seq] = await run_json(start, "tap", "--seq", str(seqs[2]), "--limit", "1")
    assert from_seq["type"] == "attempted"

    code, lines, err = await finish(await start("inspect", mid))
    assert code == 0, err
    assert len(lines) == 4
    for line, event_type in zip(lines, LIFE, strict=True):
        assert mid in line and event_type in line
        assert "{" not in line
    assert "alice@example.com" in lines[0]
    assert "250" in lines[3]


async def test_tap_from_now_shows_only_new_events(
    pipeline: Pipeline, js: JetStreamContext, start: Start
) -> None:
    await delivered_message(js)  # history the tap must not show
    tap = await start("tap", "--json", "--limit", "4")
    await wait_tapping(tap)
    command = welcome(name="Bob")
    await send(js, command)
    events = await read_json(tap, 4)
    assert [e["type"] for e in events] == LIFE
    assert {e["message_id"] for e in events} == {command["message_id"]}
    assert await asyncio.wait_for(tap.wait(), WAIT) == 0


async def test_tap_since_a_time_after_the_last_event_waits_for_new_ones(
    js: JetStreamContext, start: Start
) -> None:
    first = await js.publish("mail.evt.m1.opened", b"{}", stream=EVT_STREAM)
    since = datetime.now(UTC).isoformat()
    tap = await start("tap", "--since", since, "--json", "--limit", "1")
    await wait_tapping(tap)
    second = await js.publish("mail.evt.m2.opened", b"{}", stream=EVT_STREAM)
    [line] = await read_json(tap, 1)
    assert line["seq"] == second.seq != first.seq
    assert await asyncio.wait_for(tap.wait(), WAIT) == 0


@pytest.mark.slow  # ~10-20 s: the tap notices the lost consumer by missed heartbeats
async def test_tap_from_now_does_not_replay_history_after_a_nats_restart(
    nats_server: EmbeddedNats, js: JetStreamContext, start: Start
) -> None:
    """The ordered consumer is lost with the server; nats-py re-creates it from the last
    sequence it saw, i.e. from 1 for a tap that has printed nothing yet."""
    for n in range(3):
        await js.publish(f"mail.evt.old{n}.opened", b"{}", stream=EVT_STREAM)
    tap = await start("tap", "--json", "--limit", "2")
    await wait_tapping(tap)

    nats_server.restart()

    nc = await nats.connect(nats_server.url)
    try:
        fresh = nc.jetstream()
        for name in ("new1", "new2"):
            await fresh.publish(f"mail.evt.{name}.opened", b"{}", stream=EVT_STREAM)
        events = await read_json(tap, 2)
    finally:
        await nc.close()
    assert [e["nats_subject"] for e in events] == ["mail.evt.new1.opened", "mail.evt.new2.opened"]
    assert await asyncio.wait_for(tap.wait(), WAIT) == 0


async def test_unparseable_events_are_shown_raw(js: JetStreamContext, start: Start) -> None:
    await js.publish("mail.evt.junk.bogus", b"{not json", stream=EVT_STREAM)
    await js.publish("mail.evt.junk.delivered", b'{"type": "delivered"}', stream=EVT_STREAM)
    await js.publish("mail.evt.junk.clicked", b"[1, 2]", stream=EVT_STREAM)

    bad_json, not_event, not_object = await run_json(start, "tap", "--all", "--limit", "3")
    assert bad_json["raw"] == "{not json" and bad_json["error"]
    assert bad_json["nats_subject"] == "mail.evt.junk.bogus" and bad_json["seq"] == 1
    assert not_event["type"] == "delivered" and "event_id" in not_event["error"]
    assert not_object["raw"] == [1, 2] and not_object["error"]

    code, lines, err = await finish(await start("inspect", "junk"))
    assert code == 0, err
    assert len(lines) == 3 and all("unparseable" in line for line in lines)
    assert "{not json" in lines[0]


async def test_inspect_of_an_unknown_message_exits_1(js: JetStreamContext, start: Start) -> None:
    code, lines, err = await finish(await start("inspect", "no-such-message", "--json"))
    assert code == 1
    assert lines == []
    assert "no events for message no-such-message" in err


async def test_bad_filters_are_reported(js: JetStreamContext, start: Start) -> None:
    code, _, err = await finish(await start("tap", "--subject", "mail.evt.>", "--type", "opened"))
    assert code == 2 and "--subject cannot be combined" in err
    code, _, err = await finish(await start("tap", "--since", "yesterday"))
    assert code == 2 and "--since" in err
    code, _, err = await finish(await start("tap", "--type", "nonsense"))
    assert code == 2 and "--type" in err


async def test_tap_stops_cleanly_on_ctrl_c(js: JetStreamContext, start: Start) -> None:
    for sig in (signal.SIGINT, signal.SIGTERM):
        tap = await start("tap")
        await wait_tapping(tap)
        tap.send_signal(sig)
        code, lines, err = await finish(tap)
        assert code == 0, err
        assert lines == []
        assert "Traceback" not in err


async def test_tap_shows_operations_events(js: JetStreamContext, start: Start) -> None:
    tap = await start("tap", "--json")
    await wait_tapping(tap)
    await OpsPublisher(js).circuit("relay1", "open")
    [event] = await read_json(tap, 1)
    assert (event["nats_subject"], event["state"]) == ("mail.ops.provider.relay1.open", "open")
    assert event["provider"] == "relay1"
    tap.send_signal(signal.SIGINT)
    human = await start("tap", "--all")
    await wait_tapping(human)
    assert human.stdout is not None
    line = (await asyncio.wait_for(human.stdout.readline(), WAIT)).decode()
    assert "ops" in line and "relay1" in line and "open" in line

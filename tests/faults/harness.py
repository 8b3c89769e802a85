"""The fault suite's system under test: every component in its own process
(`jetpost run intake|renderer|sender|projections`), as in production, against the
test's real nats-server, PostgreSQL and SMTP peer; and the audit every fault test
ends with, from the log itself:

- every accepted command ends in exactly one terminal event (delivered, bounced,
  failed, cancelled, suppressed, rejected, render_failed);
- a mail that reached the peer more than once shows more than one SMTP transaction
  in its log (a duplicate SMTP cannot avoid is never invisible);
- the read models, once caught up, hold the status the log says.
"""

from __future__ import annotations

import asyncio
import email
import json
import signal
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from subprocess import Popen, TimeoutExpired
from typing import Any

import nats.errors
import psycopg
from nats.js import JetStreamContext

from services.capture import CaptureSink
from shared.settings import Settings
from shared.subjects import CMD_SEND, CMD_STREAM, EVT_STREAM
from tests.conftest import service_env

TERMINAL = ("delivered", "bounced", "failed", "cancelled", "suppressed", "rejected",
            "render_failed")  # fmt: skip
COMPONENTS = ("intake", "renderer", "sender", "projections")


@dataclass
class System:
    settings: Settings
    database_url: str
    spawn: Callable[..., Popen[bytes]]
    logs: Path
    procs: dict[str, Popen[bytes]] = field(default_factory=dict)

    def env(self) -> dict[str, str]:
        env = service_env(self.settings)
        env["JETPOST_DATABASE_URL"] = self.database_url
        env["JETPOST_SMTP_TIMEOUT"] = str(self.settings.smtp_timeout)
        return env

    def start(self, *names: str) -> None:
        for name in names or COMPONENTS:
            self.procs[name] = self.spawn(["run", name], self.env(), self.logs / f"{name}.log")

    def kill(self, name: str) -> None:
        """kill -9, as a crash: no drain, no ack, no goodbye."""
        proc = self.procs.pop(name)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)

    def stop_all(self, timeout: float = 3.0) -> None:
        """SIGTERM to every process at once, then wait for them together (briefly: a
        process still draining after `timeout` is killed; nothing here needs a drain)."""
        running = list(self.procs.values())
        self.procs.clear()
        for proc in running:
            if proc.poll() is None:
                proc.terminate()
        deadline = time.monotonic() + timeout
        for proc in running:
            try:
                proc.wait(max(deadline - time.monotonic(), 0.1))
            except TimeoutExpired:
                proc.kill()
                proc.wait()

    def log_text(self) -> str:
        return "\n".join(
            f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}"
            for p in sorted(self.logs.glob("*.log"))
        )


def command(message_id: str, **extra: Any) -> dict[str, Any]:
    return {"to": f"u-{message_id[:8]}@example.com", "template": "welcome",
            "vars": {"name": message_id[:6]}, "message_id": message_id, **extra}  # fmt: skip


async def publish(js: JetStreamContext, payloads: Iterable[bytes], window: int = 64) -> None:
    """Commands to MAIL_CMD with a window of publishes in flight."""
    pending: list[asyncio.Future[Any]] = []
    for data in payloads:
        pending.append(asyncio.ensure_future(js.publish(CMD_SEND, data, stream=CMD_STREAM)))
        if len(pending) >= window:
            await asyncio.gather(*pending)
            pending.clear()
    await asyncio.gather(*pending)


async def send(js: JetStreamContext, ids: Iterable[str], **extra: Any) -> None:
    await publish(js, (json.dumps(command(mid, **extra)).encode() for mid in ids))


async def per_message(js: JetStreamContext, event_type: str) -> Counter[str]:
    """How many events of a type each message has, from the stream's subject counts."""
    info = await js.stream_info(EVT_STREAM, subjects_filter=f"mail.evt.*.{event_type}")
    return Counter({s.split(".")[2]: n for s, n in (info.state.subjects or {}).items()})


async def terminals(js: JetStreamContext) -> dict[str, Counter[str]]:
    return {t: await per_message(js, t) for t in TERMINAL}


async def settle(js: JetStreamContext, ids: list[str], timeout: float, system: System) -> None:
    """Bounded wait until every message has a terminal event."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            found = await terminals(js)
        except (nats.errors.Error, TimeoutError):  # the server is coming back
            await asyncio.sleep(0.5)
            continue
        ended = set().union(*(c.keys() for c in found.values()))
        missing = [mid for mid in ids if mid not in ended]
        if not missing:
            return
        if loop.time() > deadline:
            raise AssertionError(
                f"{len(missing)} of {len(ids)} messages without a terminal event "
                f"(e.g. {missing[:3]})\n{system.log_text()}"
            )
        await asyncio.sleep(0.25)


@dataclass
class Audit:
    outcomes: Counter[str]  # terminal type -> messages
    copies: Counter[str]  # message id -> mails the peer kept
    invisible: list[str]  # message ids that arrived more often than the log shows


async def audit(js: JetStreamContext, ids: list[str], sink: CaptureSink | None) -> Audit:
    """Exactly one terminal event per message; duplicates counted against the log."""
    found = await terminals(js)
    outcomes: Counter[str] = Counter()
    for mid in ids:
        ends = {t: found[t][mid] for t in TERMINAL if found[t][mid]}
        assert sum(ends.values()) == 1, f"{mid}: terminal events {ends}"
        outcomes[next(iter(ends))] += 1
    copies: Counter[str] = Counter()
    for mail in sink.received if sink is not None else []:
        copies[
            str(email.message_from_bytes(mail.data)["Message-ID"]).strip("<>").split("@")[0]
        ] += 1
    attempts = await per_message(js, "attempted")
    invisible = [mid for mid, n in copies.items() if n > 1 and attempts[mid] < n]
    return Audit(outcomes, copies, invisible)


async def read_models_agree(js: JetStreamContext, database_url: str, ids: list[str],
                            timeout: float = 60.0) -> None:  # fmt: skip
    """The projections catch up with the log, and every message's row holds the
    terminal status its events say."""
    async with asyncio.timeout(timeout):
        while True:
            try:
                head = (await js.stream_info(EVT_STREAM)).state.last_seq
            except (nats.errors.Error, TimeoutError):  # the server is coming back
                await asyncio.sleep(0.5)
                continue
            async with await psycopg.AsyncConnection.connect(database_url) as conn:
                row = await (await conn.execute(
                    "SELECT min(last_seq) FROM projection_checkpoints")).fetchone()  # fmt: skip
            if row is not None and row[0] is not None and row[0] >= head:
                break
            await asyncio.sleep(0.2)
    found = await terminals(js)
    expected = {mid: t for t in TERMINAL for mid in found[t] if mid in set(ids)}
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        rows: dict[str, str] = dict(await (await conn.execute(
            "SELECT id, status FROM messages WHERE id = ANY(%s)", (ids,))).fetchall())  # fmt: skip
    wrong = {mid: (rows.get(mid), t) for mid, t in expected.items() if rows.get(mid) != t}
    assert not wrong, f"{len(wrong)} rows differ from the log, e.g. {list(wrong.items())[:5]}"

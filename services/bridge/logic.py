"""The pg-bridge's decisions, without I/O: what a row becomes, when a batch goes out,
how long to wait.

A row of `jetpost_outbox` becomes one send command whose message id comes from the
source database and the row id, so publishing a row again (after a crash, a
reconnect, a cursor that did not get stored) is the same message again: the stream's
duplicate window and intake's check of the log make it one mail.

Rows are taken in (txid, id) order, and only once they are `settled`: every
transaction that could still commit a row before them has ended. Ids are handed out
at insert but rows appear at commit, so reading `id > cursor` would step over a slow
transaction's row whose id is below one already read, and that mail would be lost.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import takewhile
from typing import Any

from shared.mailbox import has_line_break


@dataclass(frozen=True, order=True)
class Position:
    """Where a row sits in the read order: its inserting transaction, then its id."""

    txid: int
    id: int


START = Position(0, 0)


@dataclass(frozen=True)
class OutboxRow:
    id: int
    txid: int
    action: str
    email: str
    username: str | None = None
    code: str | None = None
    secret: str | None = None
    settled: bool = True  # no transaction that could precede it is still running

    @property
    def position(self) -> Position:
        return Position(self.txid, self.id)


def source_digest(source: str) -> str:
    return hashlib.sha256(source.encode()).hexdigest()[:10]


def message_id(source: str, row_id: int) -> str:
    """`bridge-<digest of the source>-<row id>`: the same row is always the same message."""
    return f"bridge-{source_digest(source)}-{row_id}"


def cursor_key(source: str) -> str:
    """The source's key in the cursor bucket: readable, and unique by the digest."""
    readable = re.sub(r"[^A-Za-z0-9_-]", "_", source)[:64]
    return f"{readable}-{source_digest(source)}"


def _valid_tag(tag: str) -> bool:
    return 0 < len(tag) <= 64 and not has_line_break(tag)


def to_command(row: OutboxRow, templates: Mapping[str, str], source: str) -> dict[str, Any]:
    """The send command for a row. An action without a mapping names its template
    itself; if the catalog has none, intake records the message as rejected (with the
    reason), so a row is never dropped silently."""
    mid = message_id(source, row.id)
    return {
        "to": row.email,
        "template": templates.get(row.action, row.action),
        "vars": {
            "email": row.email,
            "username": row.username,
            "name": row.username or row.email,  # the catalog's templates greet by `name`
            "code": row.code,
            "secret": row.secret,
        },
        "message_id": mid,
        "idempotency_key": mid,
        "tags": ["lifecycle", row.action] if _valid_tag(row.action) else ["lifecycle"],
        "transactional": True,  # account mail: no unsubscribe link, no per-list suppression
    }


MAX_COMMAND_BYTES = 256 * 1024  # well below NATS's default 1 MiB max payload


def encode(command: dict[str, Any]) -> bytes:
    """The command as published. One that NATS could refuse (a row with megabytes in a
    column) would block every row after it: it becomes a small command that intake
    records as `rejected`, naming the row, instead."""
    data = json.dumps(command, default=str).encode()
    if len(data) <= MAX_COMMAND_BYTES:
        return data
    reason = f"{len(data)} bytes as a send command, more than {MAX_COMMAND_BYTES}"
    return json.dumps({"message_id": command["message_id"], "row_too_large": reason}).encode()


def settled_prefix(rows: Sequence[OutboxRow]) -> tuple[list[OutboxRow], bool]:
    """The rows that may be taken now, and whether later ones are held back by a
    transaction still running. Settled rows come first in (txid, id) order."""
    ready = list(takewhile(lambda r: r.settled, rows))
    return ready, len(ready) < len(rows)


def foreign_cursor(cursor: Position, next_txid: int) -> bool:
    """A stored cursor past the server's next transaction id was made on another
    cluster (the database was restored elsewhere): its txids mean nothing here."""
    return cursor.txid >= next_txid


@dataclass
class Batch:
    """Rows read but not yet published. Due when full, or `wait` seconds after its
    first row arrived."""

    size: int
    wait: float
    rows: list[OutboxRow] = field(default_factory=list)
    first_at: float | None = None

    @property
    def room(self) -> int:
        return self.size - len(self.rows)

    def add(self, rows: Sequence[OutboxRow], now: float) -> None:
        if rows and not self.rows:
            self.first_at = now
        self.rows.extend(rows)

    def due(self, now: float) -> bool:
        if not self.rows:
            return False
        return self.room <= 0 or self.time_left(now) == 0.0

    def time_left(self, now: float) -> float | None:
        if self.first_at is None or not self.rows:
            return None
        return max(0.0, self.first_at + self.wait - now)

    def take(self) -> list[OutboxRow]:
        rows, self.rows, self.first_at = self.rows, [], None
        return rows


def wait_timeout(batch_left: float | None, recheck: float | None, poll: float) -> float:
    """How long to wait for a notification: until the pending batch is due, a held-back
    row is worth another look, or the safety-net poll, whichever comes first."""
    return min(t for t in (batch_left, recheck, poll) if t is not None)


@dataclass
class Backoff:
    """Doubling delays up to `cap`."""

    base: float
    cap: float
    failures: int = 0

    def next_delay(self) -> float:
        self.failures += 1
        return float(min(self.base * 2.0 ** (self.failures - 1), self.cap))

    def reset(self) -> int:
        """Back to `base`; returns how many failures there had been."""
        failures, self.failures = self.failures, 0
        return failures

    @property
    def worth_logging(self) -> bool:
        """The 1st, 2nd, 4th, 8th... failure: an outage logs a line per doubling."""
        return self.failures > 0 and self.failures & (self.failures - 1) == 0

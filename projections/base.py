"""What a projection is: named tables it owns, and how a batch of events changes them.

A projection never commits: the runner calls `apply` inside the one transaction that
also moves the projection's checkpoint, so rows and position move together.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple, Protocol

from psycopg import AsyncConnection, sql

from shared.events import Event


class Stored(NamedTuple):
    """An event as read from MAIL_EVT: its stream sequence, raw JSON and model (or its
    mirror, projections.decode: go by `event.type`, not `isinstance`), and the trace it
    was appended in (its `traceparent` header), if any, and its time as the log spells
    it, if the reader kept it (projections.decode.read_event_at). A tuple: the reader
    makes one per event, and a frozen dataclass costs several times more to build."""

    seq: int
    raw: bytes
    event: Event
    trace_id: str | None = None
    at: str | None = None


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """An event of MAIL_EVT this version cannot parse: recorded, then passed over."""

    seq: int
    subject: str
    raw: bytes
    problem: str


Progress = Callable[[int, int], None]  # (events done, events expected)


class Tables:
    """Logical table name -> the physical one being written (live or a replay copy)."""

    def __init__(self, suffix: str = "") -> None:
        self.suffix = suffix

    def __call__(self, name: str) -> sql.Identifier:
        return sql.Identifier(name + self.suffix)


class Projection(Protocol):
    name: str
    tables: tuple[str, ...]
    # Its rows depend only on the events of one message each: a replay may build it
    # in parts, one per process, by message (projections.partition).
    per_message: bool
    # It only adds rows, and never reads its own tables back: a replay may write its
    # batches on several connections at once, in any order (projections.bulk).
    appends_only: bool
    # The event types it reads (None: all); the others reach it, but change nothing.
    reads: frozenset[str] | None

    async def apply(self, conn: AsyncConnection, batch: list[Stored], tables: Tables) -> None: ...


def pg_text(value: Any) -> Any:
    """PostgreSQL text cannot hold NUL; events may (a remote server's reply, a raw
    report). The log keeps the original; the read model shows U+FFFD instead."""
    return value.replace("\0", "\ufffd") if isinstance(value, str) else value


async def execute_many(
    conn: AsyncConnection, statement: sql.SQL | sql.Composed, rows: Sequence[Sequence[Any]]
) -> None:
    """One statement for each row, pipelined (psycopg's executemany); no rows, no trip."""
    if rows:
        async with conn.cursor() as cur:
            await cur.executemany(statement, rows)


_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"})


def _text(value: str) -> str:
    """A string as COPY text: escaped only when it holds something to escape (the
    translation looks each character up; the checks are two scans in C)."""
    if "\\" in value or not value.isprintable():
        return value.translate(_COPY_ESCAPES)
    return value


def _array(value: list[str]) -> str:
    """A text[] literal, every element quoted (so NULL, commas and braces are text)."""
    if not value:
        return "{}"
    joined = '","'.join(value)
    if '"' in joined or "\\" in joined or not joined.isprintable():
        quoted = ('"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for v in value)
        return ("{" + ",".join(quoted) + "}").translate(_COPY_ESCAPES)
    return '{"' + joined + '"}'


def copy_field(value: Any) -> str:
    """One value as a field of COPY's text format: None, str, int, datetime or a list
    of str (a text[] literal, every element quoted)."""
    if value is None:
        return "\\N"
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, list):
        return _array(value)
    if isinstance(value, str):
        return _text(value)
    return str(value)


def copy_rows(rows: Sequence[Sequence[Any]]) -> bytes:
    """Rows as one block of COPY text: one call to send, instead of one per row (the
    array dumpers of psycopg's `write_row` are Python code, per element). The common
    types are told apart by `type(...) is`, and a row's repeated times (a message's
    first event sets several columns) are formatted once."""
    lines = []
    for row in rows:
        times: dict[datetime, str] = {}
        fields: list[str] = []
        add = fields.append
        for value in row:
            kind = type(value)
            if value is None:
                add("\\N")
            elif kind is str:
                add(_text(value))
            elif kind is int:
                add(str(value))
            elif kind is datetime:
                text = times.get(value)
                if text is None:
                    text = times[value] = value.isoformat()
                add(text)
            elif kind is list:
                add(_array(value))
            else:
                add(copy_field(value))
        lines.append("\t".join(fields))
    return ("\n".join(lines) + "\n").encode() if lines else b""

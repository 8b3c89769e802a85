"""What `jetpost tap` and `jetpost inspect` print, and how they read their options.
Pure: no NATS, no clock, no terminal; `services.cli.tap` does the reading."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import datetime, timedelta, tzinfo
from typing import Any, get_args

from pydantic import ValidationError
from rich.text import Text

from shared.events import (
    Accepted,
    Attempted,
    Bounced,
    Cancelled,
    Clicked,
    Complained,
    Deferred,
    Delivered,
    Event,
    Failed,
    Opened,
    Rejected,
    Rendered,
    RenderFailed,
    Resent,
    Scheduled,
    Suppressed,
    Unsubscribed,
    parse_event,
)
from shared.subjects import EVT_PREFIX, MESSAGE_ID_RE, event_subject, message_filter

DETAIL_MAX = 160
RAW_MAX = 200
TYPE_WIDTH = 13  # len("render_failed")


def _event_types() -> tuple[str, ...]:
    """Every `type` of the event union, so `--type` choices follow shared/events.py."""
    union = get_args(Event)[0]
    return tuple(get_args(model.model_fields["type"].annotation)[0] for model in get_args(union))


EVENT_TYPES = _event_types()

GOOD = frozenset({"delivered"})
BAD = frozenset({"bounced", "failed", "rejected", "render_failed"})
WAITING = frozenset({"deferred"})


def type_style(event_type: str) -> str:
    if event_type in GOOD:
        return "bold green"
    if event_type in BAD:
        return "bold red"
    if event_type in WAITING:
        return "yellow"
    return "dim"


# --- options ---------------------------------------------------------------------

_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
_UNIT = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_since(text: str, now: datetime) -> datetime:
    """`10m`, `2h`, `30s`, `1d`, `1h30m` (back from `now`), or an ISO-8601 timestamp
    (`2024-05-01T12:00:00Z`; one without an offset is local time). Aware result."""
    raw = text.strip()
    if raw and _DURATION.sub("", raw) == "":
        delta = timedelta()
        for amount, unit in _DURATION.findall(raw):
            delta += timedelta(**{_UNIT[unit]: float(amount)})
        return now - delta
    try:
        when = datetime.fromisoformat(raw)
    except ValueError:
        raise ValueError(
            f"expected a duration (30s, 10m, 2h, 1d, 1h30m) or an ISO-8601 time, got {text!r}"
        ) from None
    return when if when.tzinfo is not None else when.astimezone()


def tap_filters(
    types: Sequence[str] = (), message_id: str | None = None, subjects: Sequence[str] = ()
) -> list[str]:
    """The subject filters of a tap: raw `--subject`s, or built from `--message` and
    `--type` (several types give several filters, never overlapping)."""
    if subjects:
        if types or message_id:
            raise ValueError("--subject cannot be combined with --type or --message")
        return list(dict.fromkeys(subjects))
    if message_id is not None and not MESSAGE_ID_RE.match(message_id):
        raise ValueError(f"not a message id: {message_id!r} (letters, digits, '-', '_')")
    mid = message_id or "*"
    if not types:
        return [message_filter(message_id) if message_id else f"{EVT_PREFIX}.>"]
    return [event_subject(mid, t) for t in dict.fromkeys(types)]


# --- one event, one line ---------------------------------------------------------


def _one_line(value: str, limit: int = DETAIL_MAX) -> str:
    flat = " ".join(value.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _smtp(code: int | None, response: str) -> str:
    """`250 OK`, without repeating a code the response already starts with."""
    response = response.strip()
    if code is None or response.startswith(str(code)):
        return response
    return f"{code} {response}".strip()


def detail(event: Event) -> str:
    """The short human part of a line: what matters about this event."""
    match event:
        case Accepted():
            recipients = ", ".join(str(m) for m in event.envelope.recipients)
            return f"to {recipients}" + (f" [{event.template}]" if event.template else "")
        case Rendered():
            return event.subject
        case Attempted():
            return f"attempt {event.attempt} via {event.provider}"
        case Delivered():
            refused = f" (refused: {', '.join(event.refused)})" if event.refused else ""
            return _smtp(event.smtp_code, event.response) + refused
        case Deferred():
            return f"{_smtp(event.smtp_code, event.response)}; retry in {event.retry_in:g}s"
        case Bounced():
            text = _smtp(event.smtp_code, event.response)
            return f"{event.kind}: {text}" if text else event.kind
        case Rejected() | Failed() | RenderFailed():
            return event.reason
        case Clicked():
            return event.url
        case Suppressed():
            return f"{', '.join(event.addresses)}: {event.reason}"
        case Scheduled():
            return f"send at {event.send_at.isoformat()}"
        case Complained():
            return f"{event.recipient} ({event.feedback_type})"
        case Cancelled():
            return event.reason
        case Opened():
            return event.user_agent
        case Unsubscribed():
            return event.recipient + (f" ({event.scope})" if event.scope else "")
        case Resent():
            return f"as {event.new_message_id}"
    # an event type added later: its usual telling fields, if it has them
    fields = (getattr(event, name, None) for name in ("address", "recipient", "reason"))
    return ": ".join(str(value) for value in fields if value)


def _stamp(when: datetime, tz: tzinfo | None) -> str:
    return when.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def _head(when: datetime, seq: int, message_id: str, tz: tzinfo | None) -> Text:
    line = Text(no_wrap=True)
    line.append(_stamp(when, tz), style="dim")
    line.append(f" {'#' + str(seq):>7} ")
    line.append(message_id, style="cyan")
    line.append(" ")
    return line


def _subject_tokens(subject: str) -> tuple[str, str]:
    """(message id, type) from `mail.evt.<id>.<type>`, as far as the subject has them."""
    parts = subject.split(".")
    return (parts[2] if len(parts) > 2 else "?", parts[3] if len(parts) > 3 else "?")


def format_event(event: Event, seq: int, tz: tzinfo | None = None) -> Text:
    line = _head(event.occurred_at, seq, event.message_id, tz)
    line.append(event.type, style=type_style(event.type))
    text = _one_line(detail(event))
    if text:
        line.append(" " * (TYPE_WIDTH - len(event.type)) + " " + text)
    return line


def format_raw(
    seq: int, subject: str, data: bytes, stored_at: datetime, error: str, tz: tzinfo | None = None
) -> Text:
    """A message that is not a valid event: shown as it is, never dropped."""
    message_id, event_type = _subject_tokens(subject)
    line = _head(stored_at, seq, message_id, tz)
    line.append(event_type, style="magenta")
    line.append(" " * (TYPE_WIDTH - len(event_type)) + " ")
    line.append(f"unparseable ({_one_line(error, 80)}):", style="magenta")
    line.append(" ")
    line.append(_one_line(data.decode("utf-8", "replace"), RAW_MAX))
    return line


def parse_error(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        return f"{where}: {first['msg']}" if where else first["msg"]
    return str(exc) or type(exc).__name__


def format_line(
    seq: int, subject: str, data: bytes, stored_at: datetime, tz: tzinfo | None = None
) -> Text:
    """The readable line for one MAIL_EVT message; never raises on bad data."""
    try:
        event = parse_event(data)
    except Exception as exc:  # bad JSON, not an event: shown raw, the tap goes on
        return format_raw(seq, subject, data, stored_at, parse_error(exc), tz)
    return format_event(event, seq, tz)


def json_line(seq: int, subject: str, data: bytes) -> str:
    """One JSON object: the event as stored, plus `seq` (stream sequence) and
    `nats_subject` (not `subject`: `accepted` and `rendered` have a mail subject).
    Data that is not a valid event keeps its text in `raw` (or its fields) and says
    why in `error`."""
    try:
        payload: Any = json.loads(data)
    except ValueError as exc:
        out: dict[str, Any] = {"raw": data.decode("utf-8", "replace"), "error": parse_error(exc)}
    else:
        out = dict(payload) if isinstance(payload, dict) else {"raw": payload}
        try:
            parse_event(data)
        except Exception as exc:
            out["error"] = parse_error(exc)
    out["seq"] = seq
    out["nats_subject"] = subject
    return json.dumps(out, ensure_ascii=False, separators=(",", ":"))

"""What `jetpost tap` / `inspect` print, and how `--since` and the filters are read."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from rich.text import Text

from services.cli.main import parser
from services.cli.tap_format import (
    EVENT_TYPES,
    detail,
    format_event,
    format_line,
    json_line,
    parse_since,
    tap_filters,
    type_style,
)
from shared.events import (
    Accepted,
    Attempted,
    Bounced,
    Clicked,
    Deferred,
    Delivered,
    Envelope,
    Event,
    Failed,
    Opened,
    Rejected,
    Rendered,
    RenderFailed,
)
from shared.mailbox import Mailbox

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
AT = datetime(2024, 5, 1, 12, 0, 1, 234567, tzinfo=UTC)
ENVELOPE = Envelope(
    sender=Mailbox(email="noreply@example.com"),
    to=(Mailbox(email="alice@example.com", name="Alice"),),
    cc=(Mailbox(email="bob@example.com"),),
)
COMMON = {"event_id": "e1", "message_id": "m1", "occurred_at": AT}


def line(event: Event, seq: int = 7) -> str:
    return format_event(event, seq, UTC).plain


def style_of(text: Text, word: str) -> str:
    start = text.plain.index(word)
    styles = [str(s.style) for s in text.spans if s.start <= start < s.end]
    assert styles, f"{word!r} has no style in {text.plain!r}"
    return styles[-1]


# --- --since ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "back"),
    [
        ("30s", timedelta(seconds=30)),
        ("10m", timedelta(minutes=10)),
        ("2h", timedelta(hours=2)),
        ("1d", timedelta(days=1)),
        ("1w", timedelta(weeks=1)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("1.5h", timedelta(minutes=90)),
        (" 5m ", timedelta(minutes=5)),
    ],
)
def test_since_durations_count_back_from_now(raw: str, back: timedelta) -> None:
    assert parse_since(raw, NOW) == NOW - back


def test_since_iso_timestamps_keep_their_offset() -> None:
    assert parse_since("2024-04-30T08:00:00Z", NOW) == datetime(2024, 4, 30, 8, tzinfo=UTC)
    plus2 = parse_since("2024-04-30T10:00:00+02:00", NOW)
    assert plus2 == datetime(2024, 4, 30, 8, tzinfo=UTC)
    assert plus2.utcoffset() == timedelta(hours=2)


def test_since_without_offset_is_local_time_and_aware() -> None:
    when = parse_since("2024-04-30T08:00:00", NOW)
    assert when.tzinfo is not None
    assert when.replace(tzinfo=None) == datetime(2024, 4, 30, 8)


@pytest.mark.parametrize("raw", ["", "yesterday", "10", "m", "10x", "-5m", "10m ago", "2024-13-01"])
def test_since_rejects_anything_else(raw: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_since(raw, NOW)


# --- filters -----------------------------------------------------------------------


def test_filters() -> None:
    assert tap_filters() == ["mail.evt.>"]
    assert tap_filters(["delivered"]) == ["mail.evt.*.delivered"]
    assert tap_filters(["bounced", "failed", "bounced"]) == [
        "mail.evt.*.bounced",
        "mail.evt.*.failed",
    ]
    assert tap_filters(message_id="abc-1") == ["mail.evt.abc-1.*"]
    assert tap_filters(["delivered"], "abc") == ["mail.evt.abc.delivered"]
    assert tap_filters(subjects=["mail.evt.x.>"]) == ["mail.evt.x.>"]


def test_filters_refuse_a_bad_id_and_mixing_raw_subjects() -> None:
    with pytest.raises(ValueError, match="message id"):
        tap_filters(message_id="a.b")
    with pytest.raises(ValueError, match="cannot be combined"):
        tap_filters(["delivered"], subjects=["mail.evt.>"])


def test_event_types_follow_the_event_models() -> None:
    assert {"accepted", "rendered", "delivered", "render_failed", "clicked"} <= set(EVENT_TYPES)
    assert len(EVENT_TYPES) == len(set(EVENT_TYPES))


def test_cli_options() -> None:
    args = parser().parse_args(
        ["tap", "--type", "delivered", "--type", "bounced", "--since", "10m", "--json"]
    )
    assert args.type == ["delivered", "bounced"] and args.json and args.limit is None
    assert isinstance(args.since, datetime) and args.since.tzinfo is not None
    assert parser().parse_args(["inspect", "m1", "--json"]).message_id == "m1"


@pytest.mark.parametrize(
    "argv",
    [
        ["tap", "--all", "--seq", "3"],
        ["tap", "--since", "1h", "--all"],
        ["tap", "--seq", "0"],
        ["tap", "--limit", "x"],
        ["tap", "--since", "soon"],
        ["tap", "--type", "nope"],
    ],
)
def test_cli_refuses(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parser().parse_args(argv)
    assert "jetpost tap" in capsys.readouterr().err


# --- lines -------------------------------------------------------------------------


def test_line_layout() -> None:
    text = line(Attempted(attempt=2, provider="smtp", **COMMON), seq=42)
    assert text == "2024-05-01 12:00:01.234     #42 m1 attempted     attempt 2 via smtp"


def test_time_is_shown_in_the_given_zone() -> None:
    plus2 = timezone(timedelta(hours=2))
    text = format_event(Opened(**COMMON), 1, plus2).plain
    assert text.startswith("2024-05-01 14:00:01.234 ")


@pytest.mark.parametrize(
    ("event", "shown"),
    [
        (Accepted(envelope=ENVELOPE, template="welcome", **COMMON),
         "to Alice <alice@example.com>, bob@example.com [welcome]"),
        (Rendered(envelope=ENVELOPE, subject="Welcome, Alice!", **COMMON), "Welcome, Alice!"),
        (Delivered(attempt=1, provider="smtp", smtp_code=250, response="OK id=1", **COMMON),
         "250 OK id=1"),
        (Deferred(attempt=1, provider="smtp", smtp_code=451, response="451 4.3.0 later",
                  retry_in=30.0, **COMMON), "451 4.3.0 later; retry in 30s"),
        (Bounced(kind="hard", smtp_code=550, response="550 5.1.1 no such user", **COMMON),
         "hard: 550 5.1.1 no such user"),
        (Rejected(reason="invalid address 'x'", command_subject="mail.cmd.send", **COMMON),
         "invalid address 'x'"),
        (Failed(attempt=8, reason="gave up after 8 attempts", **COMMON),
         "gave up after 8 attempts"),
        (RenderFailed(reason="'name' is undefined", **COMMON), "'name' is undefined"),
        (Clicked(url="https://example.com/a", **COMMON), "https://example.com/a"),
    ],
)  # fmt: skip
def test_detail_per_type(event: Event, shown: str) -> None:
    assert detail(event) == shown
    assert line(event).endswith(f"{event.type:13} {shown}")


def test_detail_is_one_short_line() -> None:
    response = "452 4.2.2 mailbox\r\n full " + "x" * 500
    text = line(Deferred(attempt=1, provider="smtp", response=response, retry_in=1, **COMMON))
    assert "\n" not in text and "\r" not in text
    assert "452 4.2.2 mailbox full xxx" in text
    assert text.endswith("…") and len(text) < 250


def test_markup_in_events_is_printed_as_is() -> None:
    text = format_event(RenderFailed(reason="[bold]oops[/] [red]", **COMMON), 1, UTC)
    assert text.plain.endswith("[bold]oops[/] [red]")


@pytest.mark.parametrize(
    ("event_type", "colour"),
    [
        ("delivered", "green"),
        ("bounced", "red"),
        ("failed", "red"),
        ("rejected", "red"),
        ("render_failed", "red"),
        ("deferred", "yellow"),
        ("accepted", "dim"),
        ("rendered", "dim"),
        ("attempted", "dim"),
        ("clicked", "dim"),
    ],
)
def test_type_colour_follows_outcome(event_type: str, colour: str) -> None:
    assert colour in type_style(event_type).split()


def test_the_type_word_carries_the_colour() -> None:
    event = Delivered(attempt=1, provider="smtp", smtp_code=250, **COMMON)
    text = format_event(event, 1, UTC)
    assert "green" in style_of(text, "delivered")


def test_unparseable_data_is_shown_raw() -> None:
    text = format_line(3, "mail.evt.m9.weird", b"{not json", AT, UTC)
    assert text.plain.startswith("2024-05-01 12:00:01.234      #3 m9 weird ")
    assert "unparseable" in text.plain and text.plain.endswith("{not json")
    invalid = format_line(4, "mail.evt.m9.delivered", b'{"type": "delivered"}', AT, UTC).plain
    assert "unparseable" in invalid and "event_id" in invalid
    odd = format_line(5, "odd", b"\xff\xfe", AT, UTC).plain
    assert "unparseable" in odd and " ? ?" in odd


def test_a_valid_event_line_comes_from_its_data() -> None:
    data = Opened(user_agent="Mozilla", **COMMON).model_dump_json().encode()
    text = format_line(9, "mail.evt.m1.opened", data, NOW, UTC).plain
    assert text == "2024-05-01 12:00:01.234      #9 m1 opened        Mozilla"


# --- JSON ----------------------------------------------------------------------------


def test_json_line_is_the_event_plus_seq_and_nats_subject() -> None:
    event = Rendered(envelope=ENVELOPE, subject="Hello", **COMMON)
    out = json.loads(json_line(11, "mail.evt.m1.rendered", event.model_dump_json().encode()))
    assert out["seq"] == 11 and out["nats_subject"] == "mail.evt.m1.rendered"
    assert out["subject"] == "Hello"  # the mail's subject is not overwritten
    assert out["type"] == "rendered" and "error" not in out
    del out["seq"], out["nats_subject"]
    assert out == json.loads(event.model_dump_json())


def test_json_line_is_one_line() -> None:
    event = Failed(attempt=1, reason="a\nb", **COMMON)
    assert "\n" not in json_line(1, "s", event.model_dump_json().encode())


@pytest.mark.parametrize(
    ("data", "kept"),
    [
        (b"{not json", {"raw": "{not json"}),
        (b"[1, 2]", {"raw": [1, 2]}),
        (b'{"type": "delivered"}', {"type": "delivered"}),
        (b"\xff", {"raw": "\ufffd"}),
    ],
)
def test_json_line_for_bad_data_keeps_it_and_says_why(data: bytes, kept: dict[str, object]) -> None:
    out = json.loads(json_line(2, "mail.evt.x.y", data))
    assert out.items() >= kept.items()
    assert out["error"] and out["seq"] == 2 and out["nats_subject"] == "mail.evt.x.y"

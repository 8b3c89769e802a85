"""Hostile commands are refused at intake with a reason, at once (issue 14 items 1, 3,
6, 7, 10), and every event intake does accept can be read back by the log's readers."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.intake.logic import CommandContext, decide
from services.intake.send_batch import decide_batch
from shared import commands, limits
from shared.events import Accepted, Rejected, parse_event
from shared.limits import MAX_DEPTH, CommandError, check_value, load_command
from shared.mailbox import Mailbox, parse_mailbox

CTX = CommandContext(
    subject="mail.cmd.send",
    seq=3,
    stored_at=datetime(2026, 1, 1, tzinfo=UTC),
    default_sender=Mailbox(email="noreply@example.com"),
    templates=frozenset({"welcome"}),
)
BASE: dict[str, Any] = {"to": "a@example.com", "template": "welcome"}


def nested(depth: int) -> Any:
    value: Any = "x"
    for _ in range(depth):
        value = [value]
    return value


def decided(raw: bytes) -> Accepted | Rejected:
    event = decide(raw, CTX).event
    assert isinstance(event, Accepted | Rejected)
    # whatever intake decides must be readable back by the projections and `as_of`
    assert parse_event(event.model_dump_json()) == event
    return event


@pytest.mark.parametrize("depth", [150, 199, 220, 255, 256, 300, 900])
def test_deep_vars_are_rejected_with_a_reason_and_stay_readable(depth: int) -> None:
    event = decided(json.dumps({**BASE, "vars": {"a": nested(depth)}}).encode())
    assert isinstance(event, Rejected)
    assert "nested deeper than" in event.reason


def test_vars_within_the_limit_are_accepted() -> None:
    event = decided(json.dumps({**BASE, "vars": {"a": nested(MAX_DEPTH - 3)}}).encode())
    assert isinstance(event, Accepted)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b'{"to":"a@example.com","subject":"\\ud800","text":"t"}', "lone surrogate"),
        (b'{"to":"a@example.com","template":"welcome","vars":{"\\udfff":1}}', "lone surrogate"),
        (b'{"to":"a@example.com","template":"welcome","vars":{"n":' + b"9" * 4300 + b"}}",
         "integer"),
        (b'{"to":"a@example.com","template":"welcome","vars":{"n":' + b"9" * 40 + b"}}",
         "integer longer"),
        (b'{"to":"a@example.com","template":"welcome","vars":' + b"[" * 300 + b"]" * 300 + b"}",
         "nested deeper"),
        (b"[" * 100_000 + b"]" * 100_000, "nested deeper"),
    ],
)  # fmt: skip
def test_malformed_json_is_rejected_at_once(raw: bytes, reason: str) -> None:
    event = decided(raw)
    assert isinstance(event, Rejected)
    assert reason in event.reason, event.reason


@pytest.mark.parametrize("value", ["yes", 0, 1, "true", None])
def test_booleans_are_strict(value: Any) -> None:
    for command in ({**BASE, "transactional": value}, {**BASE, "track": {"opens": value}}):
        if value is None and "track" in command:
            continue  # an unset tracking choice is allowed
        event = decided(json.dumps(command).encode())
        assert isinstance(event, Rejected)
        assert "boolean" in event.reason, event.reason


@pytest.mark.parametrize("char", ["\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028",
                                  "\u2029", "\r", "\n", "\0"])  # fmt: skip
def test_every_line_break_is_refused_in_headers_subject_tags_and_names(char: str) -> None:
    literal = {"to": "a@example.com", "subject": "s", "text": "t"}
    for command in (
        {**literal, "headers": {"X-Note": f"a{char}b"}},
        {**literal, "subject": f"a{char}b"},
        {**literal, "tags": [f"a{char}b"]},
        {**literal, "to": f"A{char}B <a@example.com>"},
    ):
        event = decided(json.dumps(command).encode())
        assert isinstance(event, Rejected) and "line break" in event.reason, (command, event)


@pytest.mark.parametrize("name", ["Authentication-Results", "resent-to", "Resent-Bcc",
                                  "Resent-From", "ARC-Seal", "Received", "DKIM-Signature",
                                  "Return-Path", "Delivered-To", "Received-SPF"])  # fmt: skip
def test_headers_other_systems_trust_are_reserved(name: str) -> None:
    command = {"to": "a@example.com", "subject": "s", "text": "t", "headers": {name: "x"}}
    event = decided(json.dumps(command).encode())
    assert isinstance(event, Rejected) and name in event.reason


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({f"X-H{i}": "v" for i in range(51)}, "at most 50 headers"),
        ({"X-Long": "v" * 999}, "longer than 998"),
        ({f"X-H{i}": "v" * 900 for i in range(20)}, "larger than"),
    ],
)
def test_header_count_and_size_are_capped(headers: dict[str, str], reason: str) -> None:
    command = {"to": "a@example.com", "subject": "s", "text": "t", "headers": headers}
    event = decided(json.dumps(command).encode())
    assert isinstance(event, Rejected)
    assert reason in event.reason, event.reason


def test_a_huge_recipient_list_is_counted_before_any_address_is_parsed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    parsed: list[str] = []

    def counting(raw: str, **kwargs: Any) -> Mailbox:
        parsed.append(raw)
        return parse_mailbox(raw, **kwargs)

    monkeypatch.setattr(commands, "parse_mailbox", counting)
    command = {"to": [f"user{i}@example.com" for i in range(100_000)], "subject": "s",
               "text": "t"}  # fmt: skip
    event = decided(json.dumps(command).encode())
    assert isinstance(event, Rejected)
    assert "at most 50 recipients" in event.reason
    assert parsed == []  # refused on the count alone
    decided(json.dumps({**command, "to": command["to"][:3]}).encode())
    assert len(parsed) == 3  # the counter does see parsing when there is some


def test_batch_entries_are_held_to_the_same_limits() -> None:
    batch = {"template": "welcome", "recipients": [
        {"to": "a@example.com", "vars": {"deep": nested(100)}},
        {"to": "b@example.com", "vars": {"n": 1}},
    ]}  # fmt: skip
    decisions = decide_batch(json.dumps(batch).encode(), CTX)
    assert [type(d.event).__name__ for d in decisions] == ["Rejected"]  # the whole batch
    batch["recipients"][0]["vars"] = {"deep": nested(10)}  # type: ignore[index]
    decisions = decide_batch(json.dumps(batch).encode(), CTX)
    assert [type(d.event).__name__ for d in decisions] == ["Accepted", "Accepted"]


def test_check_value_is_iterative_and_names_the_place() -> None:
    with pytest.raises(CommandError, match=r"vars\.a\.0\.0"):
        check_value({"a": nested(10_000)}, "vars")
    with pytest.raises(CommandError, match="a command is a JSON object"):
        load_command(b"[1]")


class Text(str):
    """A str subclass: the plain walk leaves it to the one that names places."""


keys = st.text(alphabet=st.sampled_from(["a", "é", "\ud800", "\udfff", "😀"]), max_size=4)
json_leaves = st.one_of(
    st.none(), st.booleans(), st.floats(allow_nan=False),
    st.integers(min_value=-(10**31), max_value=10**31), keys,
    st.sampled_from([10**30, -(10**30), 10**30 - 1]),
    st.builds(Text, st.sampled_from(["a", "\ud800"])), st.just(b"bytes"),
)  # fmt: skip
json_values = st.recursive(
    json_leaves,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.lists(inner, max_size=3).map(tuple),
        st.dictionaries(st.one_of(keys, st.just(1)), inner, max_size=3),
    ),
    max_leaves=25,
)  # fmt: skip


def outcome(check: Any, value: Any, max_depth: int) -> str | None:
    try:
        check(value, "vars", max_depth)
    except CommandError as exc:
        return str(exc)
    return None


@settings(max_examples=500, deadline=None)
@given(json_values, st.integers(min_value=1, max_value=4))
def test_the_plain_walk_first_changes_no_verdict_and_no_reason(value: Any, depth: int) -> None:
    assert outcome(check_value, value, depth) == outcome(limits._check, value, depth)

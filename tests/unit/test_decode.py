"""projections.decode reads events as the models do: every event it takes from its
msgspec mirror has the values pydantic would give, and whatever pydantic refuses it
refuses too (an unreadable event stays a dead letter)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest
from pydantic import BaseModel, ValidationError, field_validator

from projections.decode import MIRRORED, MIRRORS, Unmirrored, mirror, parse_full, read_event
from shared.events import (
    Accepted,
    Attempted,
    Cancelled,
    Clicked,
    Deferred,
    Delivered,
    Envelope,
    Failed,
    Opened,
    Rejected,
    Rendered,
    RenderFailed,
    Resent,
    Unsubscribed,
    parse_event,
)
from shared.fold import fold_fields
from shared.mailbox import Mailbox

AT = datetime(2026, 5, 1, 12, 30, 15, 123456, tzinfo=UTC)
ENVELOPE = Envelope(
    sender=Mailbox(email="from@example.com", name="Sender, Inc."),
    to=(Mailbox(email="a@example.com", name="Ann"),),
    cc=(Mailbox(email="c@example.com"),),
    bcc=(Mailbox(email="b@example.com"),),
)
BASE: dict[str, Any] = {"event_id": "e1", "message_id": "m1", "occurred_at": AT,
                        "correlation_id": "m1"}  # fmt: skip
SAMPLES: list[BaseModel] = [
    Accepted(envelope=ENVELOPE, template="welcome", vars={"n": [1, {"x": None}]},
             subject="Hi", headers={"X-A": "b"}, tags=("t1", "t2"), **BASE),
    Rendered(envelope=ENVELOPE, subject="Hi\ttab", html="<p>x</p>", text="x\n",
             template="welcome", template_version="v1", tags=("t",), **BASE),
    Attempted(attempt=2, provider="smtp", **BASE),
    Delivered(attempt=1, provider="smtp", host="mx", smtp_code=250, response="ok",
              refused={"x@example.com": "550"}, **BASE),
    Deferred(attempt=1, provider="smtp", smtp_code=451, response="later", retry_in=1.5, **BASE),
    Opened(user_agent="ua", **BASE),
    Clicked(url="https://example.com/", **BASE),
    Failed(attempt=3, reason="gave up", smtp_code=421, **BASE),
    Cancelled(reason="user", **BASE),
    Rejected(reason="bad", command_subject="mail.cmd.send", raw="{}", **BASE),
    RenderFailed(reason="missing", missing_variable="name", **BASE),
    Resent(new_message_id="m2", **BASE),
    Unsubscribed(recipient="a@example.com", scope="news", **BASE),
]  # fmt: skip
ODD: list[Any] = [
    None, 0, -1, 2**70, 1.5, "", "x", "2026-01-01T00:00:00.1234567Z", "2026-01-01T00:00Z",
    "2026-01-01", True, [], ["x"], [1], {}, {"email": "x@example.com"}, {"email": 1},
    {"email": "x@example.com", "extra": 1}, [{"email": "x@example.com"}],
]  # fmt: skip


def plain(value: Any) -> Any:
    """A model or a mirror (and what they hold) as plain values, to compare."""
    if isinstance(value, BaseModel):
        return {name: plain(getattr(value, name)) for name in type(value).model_fields}
    if isinstance(value, msgspec.Struct):
        return {name: plain(getattr(value, name)) for name in value.__struct_fields__}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value


def verdict(read: Any) -> Any:
    try:
        return plain(read())
    except (ValidationError, ValueError):
        return "refused"


def agree(payload: bytes, type_: str) -> None:
    assert verdict(lambda: read_event(payload, type_.encode())) == verdict(
        lambda: parse_full(payload)
    ), payload[:300]


def test_every_mirrored_type_has_a_sample_and_reads_from_its_mirror() -> None:
    assert {type(s) for s in SAMPLES} == set(MIRRORED)
    for sample in SAMPLES:
        event = read_event(sample.model_dump_json().encode(), sample.type.encode())  # type: ignore[attr-defined]
        assert isinstance(event, msgspec.Struct)  # not the full parse
        assert plain(event) == plain(sample)


def test_mirrors_fold_as_the_models_do() -> None:
    raw = [(s.model_dump_json().encode(), s.type.encode()) for s in SAMPLES]  # type: ignore[attr-defined]
    assert fold_fields(read_event(r, t) for r, t in raw) == fold_fields(
        parse_event(r) for r, _ in raw
    )


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda s: s.type)
def test_odd_values_are_read_as_pydantic_reads_them_or_refused_alike(sample: BaseModel) -> None:
    good = json.loads(sample.model_dump_json())
    type_ = good["type"]
    for field in [*good, "unknown_field"]:
        for odd in ODD:
            agree(json.dumps({**good, field: odd}).encode(), type_)
        if field != "occurred_at":  # absent, pydantic stamps the time of parsing
            agree(json.dumps({k: v for k, v in good.items() if k != field}).encode(), type_)
    if "envelope" in good:
        for part in ("sender", "to", "cc", "extra"):
            for odd in ODD:
                envelope = {**good["envelope"], part: odd}
                agree(json.dumps({**good, "envelope": envelope}).encode(), type_)
    agree(json.dumps({**good, "type": "opened" if type_ != "opened" else "clicked"}).encode(),
          type_)  # fmt: skip


def test_what_the_mirror_cannot_check_goes_to_the_full_parse() -> None:
    good = json.loads(SAMPLES[0].model_dump_json())
    deep = {"deep": json.loads("[" * 250 + "1" + "]" * 250)}  # pydantic stops at 200 levels
    tracked = {"opens": True}  # a Flag: pydantic's validator, no mirror
    attachment = {"filename": "a.pdf", "content_type": "application/pdf", "object": "0" * 64}
    for change in ({"vars": deep}, {"track": tracked}, {"track": {"opens": "yes"}},
                   {"attachments": [attachment]}, {"attachments": [{"filename": 1}]}):  # fmt: skip
        agree(json.dumps({**good, **change}).encode(), "accepted")
    poison = json.dumps({**good, "vars": {}}).replace('"vars": {}', '"vars": {"d": %s}')
    with pytest.raises(ValueError, match="nests too deeply"):
        read_event((poison % ("[" * 5000 + "]" * 5000)).encode(), b"accepted")


def test_a_model_with_a_validator_has_no_mirror() -> None:
    class Checked(Opened):
        @field_validator("user_agent")
        @classmethod
        def _ua(cls, value: str) -> str:
            return value

    with pytest.raises(Unmirrored):
        mirror(Checked)


def test_types_without_a_mirror_and_malformed_json_take_the_full_parse() -> None:
    assert b"bounced" not in MIRRORS and b"suppression_added" not in MIRRORS
    for payload in (b"", b"not json", b"[]", b'{"type": "accepted"}', b"\xff"):
        agree(payload, "accepted")

"""Events round-trip through JSON, and older versions are lifted before validation."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from shared import events
from shared.events import Opened, event_id_for, parse_event, uuid5_str


def test_round_trip() -> None:
    event = Opened(event_id="e", message_id="m", user_agent="ua")
    assert parse_event(event.model_dump_json()) == event


def test_unknown_fields_and_types_are_refused() -> None:
    with pytest.raises(ValueError):
        parse_event(json.dumps({"type": "opened", "event_id": "e", "message_id": "m", "x": 1}))
    with pytest.raises(ValueError):
        parse_event(json.dumps({"type": "teleported", "event_id": "e", "message_id": "m"}))


def test_upcasters_lift_old_versions(monkeypatch: pytest.MonkeyPatch) -> None:
    def v0_to_v1(payload: dict[str, Any]) -> dict[str, Any]:
        payload = dict(payload, v=1)
        payload["user_agent"] = payload.pop("agent")
        return payload

    monkeypatch.setattr(events, "UPCASTERS", {("opened", 0): v0_to_v1})
    old = {"type": "opened", "v": 0, "event_id": "e", "message_id": "m", "agent": "ua",
           "occurred_at": "2026-11-01T00:00:00Z"}  # fmt: skip
    lifted = parse_event(json.dumps(old))
    assert isinstance(lifted, Opened) and (lifted.v, lifted.user_agent) == (1, "ua")


def test_bounced_v1_is_lifted_to_v2() -> None:
    old = {"type": "bounced", "v": 1, "event_id": "e", "message_id": "m", "kind": "hard",
           "status": "5.1.1", "response": "550 5.1.1 unknown", "recipients": ["a@example.com"],
           "occurred_at": "2026-11-01T00:00:00Z"}  # fmt: skip
    lifted = parse_event(json.dumps(old))
    assert isinstance(lifted, events.Bounced)
    assert (lifted.v, lifted.action, lifted.reason, lifted.evidence) == (2, "failed", None, "")
    soft = parse_event(json.dumps({**old, "kind": "soft"}))
    assert isinstance(soft, events.Bounced) and soft.action is None


def test_suppressed_v1_is_lifted_to_v2() -> None:
    old = {"type": "suppressed", "v": 1, "event_id": "e", "message_id": "m",
           "addresses": ["a@example.com"], "reason": "a@example.com: manual",
           "occurred_at": "2026-11-01T00:00:00Z"}  # fmt: skip
    lifted = parse_event(json.dumps(old))
    assert isinstance(lifted, events.Suppressed) and (lifted.v, lifted.envelope) == (2, None)


@pytest.mark.parametrize("name", ["", "m1:accepted:1", "é-ü:rendered:3", "x" * 300])
def test_event_ids_are_the_uuid5_of_their_dedup_id(name: str) -> None:
    namespace = uuid.UUID("6f1c1d2e-3b0a-4f59-9a43-5d0b2f7e9c11")
    assert uuid5_str(namespace.bytes, name) == str(uuid.uuid5(namespace, name))
    assert event_id_for("m1", "accepted", 2) == str(uuid.uuid5(namespace, "m1:accepted:2"))


@pytest.mark.parametrize("data", [b"[]", b"1", b'"x"', b"null", b'{"v": []}', b'{"type": []}'])
def test_an_event_that_is_no_object_or_has_odd_keys_is_a_value_error(data: bytes) -> None:
    """Every caller handles ValueError (ValidationError is one): an AttributeError or
    TypeError here crashed the handler that read such an event instead."""
    with pytest.raises(ValueError):
        parse_event(data)

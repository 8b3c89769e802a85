"""pg-bridge decisions: row -> send command, settled rows, batching, backoff, settings."""

from __future__ import annotations

import json

import pytest

from services.bridge.logic import (
    MAX_COMMAND_BYTES,
    START,
    Backoff,
    Batch,
    OutboxRow,
    Position,
    cursor_key,
    encode,
    foreign_cursor,
    message_id,
    settled_prefix,
    to_command,
    wait_timeout,
)
from shared.commands import SendCommand
from shared.settings import ConfigError, load_settings, parse_template_map


def row(id: int = 7, txid: int = 100, action: str = "activation", **extra: object) -> OutboxRow:
    fields: dict[str, object] = {"email": "alice@example.com", "username": "alice", **extra}
    return OutboxRow(id=id, txid=txid, action=action, **fields)  # type: ignore[arg-type]


def test_a_row_becomes_a_valid_send_command() -> None:
    command = to_command(row(code="123456", secret="s3cr3t"), {"activation": "welcome"}, "shop")
    assert command == {
        "to": "alice@example.com",
        "template": "welcome",
        "vars": {"email": "alice@example.com", "username": "alice", "name": "alice",
                 "code": "123456", "secret": "s3cr3t"},
        "message_id": message_id("shop", 7),
        "idempotency_key": message_id("shop", 7),
        "tags": ["lifecycle", "activation"],
        "transactional": True,
    }  # fmt: skip
    parsed = SendCommand.model_validate(command)
    assert parsed.message_id == command["message_id"]


def test_an_unmapped_action_names_its_template() -> None:
    assert to_command(row(action="password_reset"), {}, "shop")["template"] == "password_reset"


def test_name_falls_back_to_the_address() -> None:
    assert to_command(row(username=None), {}, "shop")["vars"]["name"] == "alice@example.com"


def test_an_action_unfit_for_a_tag_is_left_out_of_the_tags() -> None:
    command = to_command(row(action="x" * 65), {"x" * 65: "welcome"}, "shop")
    assert command["tags"] == ["lifecycle"]
    SendCommand.model_validate(command)


def test_a_command_is_published_as_json() -> None:
    command = to_command(row(code=12345), {}, "shop")  # a column the app made numeric
    assert json.loads(encode(command)) == command


def test_an_oversized_row_becomes_a_command_intake_rejects() -> None:
    command = to_command(row(secret="x" * MAX_COMMAND_BYTES), {}, "shop")
    data = encode(command)
    assert len(data) < 200
    assert json.loads(data)["message_id"] == command["message_id"]
    with pytest.raises(ValueError, match="row_too_large"):
        SendCommand.model_validate_json(data)


def test_message_ids_are_stable_per_source_and_row() -> None:
    assert message_id("shop", 1) == message_id("shop", 1)
    assert message_id("shop", 1) != message_id("shop", 2)
    assert message_id("shop", 1) != message_id("blog", 1)
    assert message_id("shop", 1).startswith("bridge-")
    long_id = message_id("any source/with spaces", 2**62)
    SendCommand.model_validate({"to": "a@example.com", "subject": "s", "text": "t",
                                "message_id": long_id})  # fmt: skip


def test_cursor_keys_are_valid_kv_keys_and_distinct() -> None:
    assert cursor_key("shop").startswith("shop-")
    assert cursor_key("my app/db") != cursor_key("my_app_db")
    assert all(c.isalnum() or c in "-_" for c in cursor_key("my app/db ÿ"))


def test_positions_order_by_transaction_then_id() -> None:
    assert START < Position(1, 1) < Position(1, 2) < Position(2, 1)
    assert row(id=9, txid=3).position == Position(3, 9)


def test_rows_behind_a_running_transaction_are_held_back() -> None:
    rows = [row(1), row(2), row(3, settled=False), row(4, settled=False)]
    ready, held = settled_prefix(rows)
    assert [r.id for r in ready] == [1, 2] and held
    assert settled_prefix(rows[:2]) == (rows[:2], False)
    assert settled_prefix([]) == ([], False)


def test_a_cursor_from_another_cluster_is_recognised() -> None:
    assert not foreign_cursor(Position(100, 5), next_txid=101)
    assert foreign_cursor(Position(100, 5), next_txid=100)
    assert not foreign_cursor(START, next_txid=3)


def test_a_batch_is_due_when_full() -> None:
    batch = Batch(size=3, wait=10.0)
    assert not batch.due(0.0) and batch.room == 3 and batch.time_left(0.0) is None
    batch.add([row(1), row(2)], now=0.0)
    assert not batch.due(1.0) and batch.room == 1
    batch.add([row(3)], now=1.0)
    assert batch.due(1.0) and batch.room == 0
    assert [r.id for r in batch.take()] == [1, 2, 3]
    assert batch.room == 3 and not batch.due(100.0)


def test_a_batch_is_due_wait_seconds_after_its_first_row() -> None:
    batch = Batch(size=100, wait=0.5)
    batch.add([], now=0.0)
    assert batch.time_left(0.0) is None
    batch.add([row(1)], now=10.0)
    batch.add([row(2)], now=10.4)  # a later row does not push the deadline out
    assert batch.time_left(10.4) == pytest.approx(0.1)
    assert not batch.due(10.4) and batch.due(10.5)
    batch.take()
    batch.add([row(3)], now=20.0)
    assert batch.time_left(20.0) == 0.5


def test_batch_wait_zero_sends_at_once() -> None:
    batch = Batch(size=100, wait=0.0)
    batch.add([row(1)], now=5.0)
    assert batch.due(5.0)


def test_wait_timeout_is_the_nearest_wakeup() -> None:
    assert wait_timeout(None, None, 10.0) == 10.0
    assert wait_timeout(0.3, None, 10.0) == 0.3
    assert wait_timeout(0.3, 0.05, 10.0) == 0.05
    assert wait_timeout(None, 20.0, 10.0) == 10.0


def test_backoff_doubles_to_its_cap_and_logs_per_doubling() -> None:
    backoff = Backoff(0.5, 4.0)
    assert not backoff.worth_logging
    delays, logged = [], []
    for _ in range(9):
        delays.append(backoff.next_delay())
        logged.append(backoff.worth_logging)
    assert delays == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0, 4.0, 4.0, 4.0]
    assert [i + 1 for i, flag in enumerate(logged) if flag] == [1, 2, 4, 8]
    assert backoff.reset() == 9 and backoff.next_delay() == 0.5


def test_template_map_is_parsed() -> None:
    assert parse_template_map("") == {}
    assert parse_template_map(" activation = welcome , reset=password_reset,") == {
        "activation": "welcome",
        "reset": "password_reset",
    }


@pytest.mark.parametrize(
    "raw", ["activation", "=welcome", "activation=", "a=Welcome", "a=../x", "a=b,a=c"]
)
def test_bad_template_maps_are_refused(raw: str) -> None:
    with pytest.raises(ValueError):
        parse_template_map(raw)


def test_bridge_settings_are_validated() -> None:
    settings = load_settings(bridge_templates="activation=welcome", bridge_channel="app_mail")
    assert settings.bridge_template_map == {"activation": "welcome"}
    assert (settings.bridge_batch_size, settings.bridge_batch_wait) == (100, 0.5)
    with pytest.raises(ConfigError, match="JETPOST_BRIDGE_TEMPLATES"):
        load_settings(bridge_templates="activation")
    with pytest.raises(ConfigError, match="JETPOST_BRIDGE_CHANNEL"):
        load_settings(bridge_channel="bad-channel; drop")
    with pytest.raises(ConfigError, match="JETPOST_BRIDGE_BATCH_SIZE"):
        load_settings(bridge_batch_size=0)

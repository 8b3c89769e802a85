"""What start-up may change on a live stream by itself, and what it holds back."""

from __future__ import annotations

from shared.nats_plan import plan

LIVE = {
    "name": "MAIL_EVT",
    "subjects": ["mail.evt.>", "mail.extra.>"],
    "num_replicas": 3,
    "storage": "file",
    "max_age": 0,
    "duplicate_window": 120_000_000_000,
    "allow_msg_schedules": True,  # a field this client may not know: kept as it is
    "metadata": {"_nats.req.level": "1"},
}


def test_the_same_definition_changes_nothing() -> None:
    result = plan("stream MAIL_EVT", LIVE, {"subjects": ["mail.extra.>", "mail.evt.>"],
                                             "num_replicas": 3, "max_age": 0})  # fmt: skip
    assert not result.changed and not result.held and result.config == LIVE


def test_fewer_replicas_other_storage_and_a_dropped_subject_are_held() -> None:
    wanted = {"subjects": ["mail.evt.>"], "num_replicas": 1, "storage": "memory"}
    result = plan("stream MAIL_EVT", LIVE, wanted)
    assert not result.changed
    assert result.config == LIVE
    held = {d.field: d for d in result.held}
    assert set(held) == {"subjects", "num_replicas", "storage"}
    assert "num_replicas 3 -> 1" in str(held["num_replicas"])
    assert "mail.extra.>" in held["subjects"].why


def test_safe_changes_are_applied_and_unknown_fields_kept() -> None:
    wanted = {"num_replicas": 5, "max_age": 86_400_000_000_000,
              "subjects": ["mail.evt.>", "mail.extra.>", "mail.more.>"]}  # fmt: skip
    result = plan("stream MAIL_EVT", LIVE, wanted)
    assert not result.held
    assert {d.field for d in result.changes} == {"num_replicas", "max_age", "subjects"}
    assert result.config["num_replicas"] == 5
    assert result.config["allow_msg_schedules"] is True
    assert result.config["metadata"] == LIVE["metadata"]


def test_a_new_subject_is_added_while_a_dropped_one_is_held() -> None:
    result = plan("stream MAIL_EVT", LIVE, {"subjects": ["mail.evt.>", "mail.more.>"]})
    assert result.config["subjects"] == ["mail.evt.>", "mail.extra.>", "mail.more.>"]
    assert [d.field for d in result.held] == ["subjects"]


def test_forced_lowers_replicas_and_drops_subjects_but_never_moves_storage() -> None:
    wanted = {"subjects": ["mail.evt.>"], "num_replicas": 1, "storage": "memory"}
    result = plan("stream MAIL_EVT", LIVE, wanted, force=True)
    assert result.config["num_replicas"] == 1 and result.config["subjects"] == ["mail.evt.>"]
    assert [d.field for d in result.held] == ["storage"]


def test_unset_fields_are_not_compared() -> None:
    result = plan("consumer MAIL_EVT/sender", {"ack_wait": 10, "description": None},
                  {"ack_wait": 10, "description": "", "backoff": None})  # fmt: skip
    assert not result.changed and not result.held

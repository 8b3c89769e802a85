"""Every command subject has exactly one intake consumer, and batches have their own."""

from __future__ import annotations

from nats.js.api import ConsumerConfig

from shared import subjects
from shared.lanes import is_bulk
from shared.nats_setup import load_definitions
from shared.settings import load_settings


def filters(config: ConsumerConfig) -> list[str]:
    return list(config.filter_subjects or [config.filter_subject or ""])


def test_each_command_subject_has_one_intake_consumer() -> None:
    definitions = load_definitions(load_settings())
    commands = {v for k, v in vars(subjects).items() if k.startswith("CMD_") and k != "CMD_STREAM"}
    taken: list[str] = []
    for durable in ("intake", "intake_bulk"):
        taken += filters(definitions.consumer(durable)[1])
    assert sorted(taken) == sorted(commands)
    assert filters(definitions.consumer("intake_bulk")[1]) == [subjects.CMD_SEND_BATCH]


def test_bulk_is_a_batch_entry_that_is_not_transactional() -> None:
    assert is_bulk(subjects.CMD_SEND_BATCH, transactional=False)
    assert not is_bulk(subjects.CMD_SEND_BATCH, transactional=True)
    assert not is_bulk(subjects.CMD_SEND, transactional=False)

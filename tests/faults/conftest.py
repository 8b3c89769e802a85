"""Fixtures of the fault suite: settings that make faults show within seconds (short
ack waits and SMTP timeouts, quick retries) and the system as separate processes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from subprocess import Popen

import pytest
from nats.js import JetStreamContext

from shared.settings import Settings
from tests.faults.harness import System


@pytest.fixture
def fault_settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={"ack_wait": 4.0, "smtp_timeout": 2.0, "max_attempts": 12, "retry_base": 0.2,
                "retry_max": 1.0, "smtp_pool_size": 4}
    )  # fmt: skip


@pytest.fixture
def system(
    fault_settings: Settings,
    database_url: str,
    js: JetStreamContext,  # the streams exist before any process starts
    spawn: Callable[..., Popen[bytes]],
    tmp_path: Path,
) -> Iterator[System]:
    running = System(fault_settings, database_url, spawn, tmp_path)
    yield running
    running.stop_all()

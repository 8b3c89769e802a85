"""The README's path for a newcomer: `jetpost dev`, then `jetpost send`, then a mail in
the capture folder; Ctrl-C stops everything; a restart keeps the data."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from shared.embedded import free_port
from tests.conftest import JETPOST


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    """Bounded polling for what only the file system can tell us."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.fixture
def dev_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JETPOST_")}
    env.update(
        JETPOST_DATA_DIR=str(tmp_path / "data"),
        JETPOST_NATS_PORT=str(free_port()),
        JETPOST_CAPTURE_PORT="0",
        JETPOST_API_PORT="0",
        JETPOST_BOUNCE_PORT=str(free_port()),
        JETPOST_FROM="jetpost <noreply@example.com>",
    )
    return env


@pytest.fixture
def dev(tmp_path: Path, dev_env: dict[str, str]) -> Iterator[Callable[[], subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    log = tmp_path / "dev.log"

    def start() -> subprocess.Popen[bytes]:
        log.write_bytes(b"")
        with log.open("ab") as out:
            proc = subprocess.Popen([JETPOST, "dev"], env=dev_env, stdout=out, stderr=out)
        started.append(proc)
        wait_until(lambda: b"Ctrl-C stops" in log.read_bytes() or proc.poll() is not None,
                   60, "jetpost dev to come up")  # fmt: skip
        assert proc.poll() is None, log.read_text()
        return proc

    yield start
    for proc in started:  # a failed test still stops everything it started, cleanly
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def status_of(db_url: str, message_id: str) -> str | None:
    with psycopg.connect(db_url) as conn:
        row = conn.execute("SELECT status FROM messages WHERE id = %s", (message_id,)).fetchone()
    return str(row[0]) if row else None


def stop(proc: subprocess.Popen[bytes]) -> int:
    proc.send_signal(signal.SIGINT)
    return proc.wait(30)


def test_dev_send_capture_stop_restart(
    dev: Callable[[], subprocess.Popen[bytes]], dev_env: dict[str, str], tmp_path: Path
) -> None:
    proc = dev()
    out = (tmp_path / "dev.log").read_text()
    for label in ("NATS", "database", "capture folder", "data folder"):
        assert label in out
    sent = subprocess.run(
        [JETPOST, "send", "--to", "alice@example.com", "--template", "welcome",
         "--var", "name=Alice"],
        env=dev_env, capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    message_id = sent.stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{32}", message_id)
    capture = Path(dev_env["JETPOST_DATA_DIR"]) / "capture"
    wait_until(lambda: any(capture.glob("*.eml")), 30, "a mail in the capture folder")
    mail = next(capture.glob("*.eml")).read_text()
    assert f"<{message_id}@example.com>" in mail and "Alice" in mail

    found = re.search(r"database\s+(\S+)", (tmp_path / "dev.log").read_text())
    assert found is not None
    database = found.group(1)
    wait_until(lambda: status_of(database, message_id) == "delivered", 30,
               "the messages read model to show the mail delivered")  # fmt: skip
    replayed = subprocess.run(
        [JETPOST, "replay"], env={**dev_env, "JETPOST_DATABASE_URL": database},
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert re.search(r"replayed 4 events into messages, timeline, suppressions", replayed.stderr)
    assert status_of(database, message_id) == "delivered"
    assert stop(proc) == 0

    proc = dev()  # restart on the same data
    streams = subprocess.run(
        [JETPOST, "streams"], env=dev_env, capture_output=True, text=True, timeout=30, check=True
    )
    assert re.search(r"MAIL_EVT\s+messages=4\b", streams.stdout + streams.stderr)
    db_url = re.search(r"database\s+(\S+)", (tmp_path / "dev.log").read_text())
    assert db_url is not None
    with psycopg.connect(db_url.group(1)) as conn:
        row = conn.execute("SELECT count(*) FROM schema_migrations").fetchone()
        assert row is not None and row[0] >= 1
    assert stop(proc) == 0

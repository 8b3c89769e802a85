"""A newcomer's first hour with `jetpost dev` (issue 12): the commands it prints run as
printed from a fresh shell; `keys` finds the dev database; `tap --all --limit` ends;
a second instance on a taken port says which port and which variable; a killed dev's
PostgreSQL is stopped by the next clean stop."""

from __future__ import annotations

import os
import re
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import JETPOST
from tests.e2e.test_dev import dev, dev_env, stop, wait_until  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def printed(log: Path, label: str) -> str:
    found = re.search(rf"^\s+{re.escape(label)}\s+(.+)$", log.read_text(), re.MULTILINE)
    assert found, log.read_text()
    return found.group(1).strip()


def fresh_shell(line: str, home: Path) -> subprocess.CompletedProcess[str]:
    """As pasted into a new terminal: no virtualenv on PATH, no JETPOST_* set."""
    env = {"PATH": "/usr/bin:/bin", "HOME": str(home), "LANG": "C.UTF-8"}
    return subprocess.run(["bash", "-c", line], env=env, capture_output=True, text=True,
                          timeout=60, check=False)  # fmt: skip


def postgres_running(data: Path) -> bool:
    pid_file = data / "pg" / "postmaster.pid"
    if not pid_file.exists():
        return False
    try:
        os.kill(int(pid_file.read_text().split()[0]), 0)
    except (ProcessLookupError, ValueError, IndexError):
        return False
    return True


def test_first_hour(
    dev: Callable[[], subprocess.Popen[bytes]],  # noqa: F811
    dev_env: dict[str, str],  # noqa: F811
    tmp_path: Path,
) -> None:
    proc = dev()
    log = tmp_path / "dev.log"
    assert "/console" in log.read_text()

    key = fresh_shell(printed(log, "an API key:"), tmp_path)
    assert key.returncode == 0 and key.stdout.startswith("jp_"), key
    sent = fresh_shell(printed(log, "send a mail:"), tmp_path)
    assert sent.returncode == 0 and re.fullmatch(r"[0-9a-f]{32}\n", sent.stdout), sent
    message_id = sent.stdout.strip()

    def jetpost(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([JETPOST, *args], env={**dev_env, **env}, capture_output=True,
                              text=True, timeout=60, check=False)  # fmt: skip

    wait_until(lambda: '"delivered"' in jetpost("inspect", message_id, "--json").stdout, 30,
               "the mail delivered")  # fmt: skip
    tapped = jetpost("tap", "--all", "--limit", "50", "--json")  # fewer events than 50
    assert tapped.returncode == 0 and len(tapped.stdout.splitlines()) == 4, tapped

    keys = jetpost("keys", "list")  # no JETPOST_DATABASE_URL: the dev database is found
    assert keys.returncode == 0 and " me " in keys.stdout, keys

    again = jetpost("dev")  # the same NATS port
    assert again.returncode == 2 and "Traceback" not in again.stderr, again
    assert f"JETPOST_NATS_PORT: port {dev_env['JETPOST_NATS_PORT']}" in again.stderr
    # (the API's port: tests/unit/test_cli_frictions.py, without a second PostgreSQL)

    data = Path(dev_env["JETPOST_DATA_DIR"])
    proc.send_signal(signal.SIGKILL)  # killed: its PostgreSQL lives on
    proc.wait(10)
    assert postgres_running(data)
    assert stop(dev()) == 0  # the next dev takes it over and stops it with itself
    wait_until(lambda: not postgres_running(data), 30, "PostgreSQL to stop")

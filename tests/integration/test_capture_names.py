"""The capture sink names each mail by its jetpost message id and keeps its SMTP
envelope beside it (issue 12, item 9); `jetpost send` refuses what cannot be sent
before publishing anything (item 4): no NATS is even needed to learn that."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import aiosmtplib

from services.capture import CaptureSink
from tests.conftest import JETPOST


async def test_mail_is_named_by_message_id_with_its_envelope(tmp_path: Path) -> None:
    sink = CaptureSink(tmp_path / "capture")
    port = await sink.start()
    try:
        mail = (
            b"X-Jetpost-Message-Id: abc_123\r\nSubject: hi\r\nFrom: a@example.com\r\n"
            b"To: b@example.com\r\n\r\nhello\r\n"
        )
        for _ in range(2):  # a redelivery keeps the first file and adds one
            await aiosmtplib.send(
                mail,
                sender="bounces+abc_123@example.com",
                recipients=["b@example.com", "c@example.com"],
                hostname="127.0.0.1",
                port=port,
            )
        await aiosmtplib.send(
            b"Subject: other\r\n\r\nx\r\n",
            sender="x@example.com",
            recipients=["y@example.com"],
            hostname="127.0.0.1",
            port=port,
        )
        await sink.wait_for(3, timeout=10)
    finally:
        await sink.stop()
    names = sorted(p.name for p in (tmp_path / "capture").iterdir())
    assert "abc_123.eml" in names and "abc_123.envelope.json" in names
    assert sum(n.startswith("abc_123-") and n.endswith(".eml") for n in names) == 1
    assert len([n for n in names if n.endswith(".eml")]) == 3
    envelope = json.loads((tmp_path / "capture" / "abc_123.envelope.json").read_text())
    assert envelope["mail_from"] == "bounces+abc_123@example.com"
    assert envelope["rcpt_tos"] == ["b@example.com", "c@example.com"]


def test_send_refuses_what_cannot_be_sent(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "JETPOST_NATS_URL": "nats://127.0.0.1:9"}  # unreachable

    def send(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [JETPOST, "send", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    cases = [
        (["--to", "a@example.com", "--template", "nope"], "unknown template 'nope'"),
        (["--to", "not an address", "--subject", "s", "--text", "t"], "'not an address'"),
        (["--to", "a@example.com", "--template", "welcome"], "missing variable 'name'"),
    ]
    for args, reason in cases:
        done = send(*args)
        assert done.returncode == 1 and done.stdout == "", (args, done)
        assert reason in done.stderr.replace("\n", " "), done.stderr

"""DKIM end to end: `jetpost dkim keygen` writes a key and prints the TXT record; the
sender signs with it; dkimpy's own verifier accepts the mail as the sink received
it against that record; `jetpost dkim check` compares it with a local DNS server.
Without a key: unsigned (one warning) or `rejected` when DKIM is required."""

from __future__ import annotations

import logging
import stat
import time
from pathlib import Path

import dkim
import pytest
from nats.js import JetStreamContext

from services.capture import CaptureSink
from services.cli.dkim import TxtRecord, check, keygen
from services.sender.dkim_sign import DkimSigner
from services.sender.outgoing import make_mail
from shared.events import Envelope, Rendered
from shared.mailbox import Mailbox
from shared.settings import Settings
from tests.conftest import Pipeline
from tests.delivery_flow import send_many, wait_settled
from tests.delivery_peers import DnsResponder
from tests.eventlog_reader import history


def verify(data: bytes, record: TxtRecord) -> bool:
    def dnsfunc(name: bytes, timeout: int = 5) -> bytes:
        assert name.decode().rstrip(".") == record.name
        return record.value.encode()

    return bool(dkim.verify(data, dnsfunc=dnsfunc))


def signed_headers(data: bytes) -> list[str]:
    """The h= tag of the mail's DKIM-Signature."""
    head = data.split(b"\r\n\r\n", 1)[0].decode()
    signature = head.replace("\r\n ", " ").replace("\r\n\t", " ").split("\r\n")[0]
    tags = dict(t.strip().split("=", 1) for t in signature.split(":", 1)[1].split(";") if "=" in t)
    return [h.strip().lower() for h in tags["h"].split(":")]


async def test_signed_mail_verifies_as_received(
    settings: Settings, js: JetStreamContext, sink: CaptureSink, tmp_path: Path
) -> None:
    keys = tmp_path / "dkim"
    path, record = keygen(keys, "jetpost.test", "s1")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert record.name == "s1._domainkey.jetpost.test"
    running = Pipeline(settings)
    await running.start(dkim_dir=keys)
    try:
        ids = await send_many(js, ["reader@example.com"])
        assert (await wait_settled(js, ids))[ids[0]] == ["delivered"]
    finally:
        await running.stop()
    [mail] = sink.received
    assert mail.data.startswith(b"DKIM-Signature: ")
    assert verify(mail.data, record)
    assert b"c=relaxed/relaxed" in mail.data and b"a=rsa-sha256" in mail.data
    headers = signed_headers(mail.data)
    for name in ("from", "to", "subject", "date", "message-id", "mime-version", "content-type"):
        assert name in headers
    tampered = mail.data.replace(b"Subject: mail 0", b"Subject: mail 9")
    assert not verify(tampered, record)


def rendered(headers: dict[str, str]) -> Rendered:
    return Rendered(
        event_id="e1",
        message_id="m1",
        envelope=Envelope(
            sender=Mailbox(email="news@jetpost.test"), to=(Mailbox(email="x@example.com"),)
        ),
        subject="Hello",
        text="hi\n",
        headers={"Message-ID": "<m1@jetpost.test>", **headers},
    )


def test_every_retry_signs_the_same_bytes_and_covers_list_unsubscribe(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, record = keygen(tmp_path, "jetpost.test", "s2")
    signer = DkimSigner(tmp_path, required=False)
    event = rendered({
        "List-Unsubscribe": "<https://jetpost.test/u/abc>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    })  # fmt: skip
    first = make_mail(event, None, signer).data
    later = time.time() + 3600  # the retry, an hour on
    monkeypatch.setattr(time, "time", lambda: later)
    again = make_mail(event, None, signer).data
    assert first == again
    assert verify(first, record)
    assert {"list-unsubscribe", "list-unsubscribe-post"} <= set(signed_headers(first))


def test_no_key_sends_unsigned_with_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    signer = DkimSigner(tmp_path, required=False)
    with caplog.at_level(logging.WARNING, logger="jetpost.sender.dkim"):
        for _ in range(3):
            assert not make_mail(rendered({}), None, signer).data.startswith(b"DKIM")
    assert len([r for r in caplog.records if "no DKIM key" in r.getMessage()]) == 1


async def test_required_dkim_without_a_key_is_rejected(
    settings: Settings, js: JetStreamContext, sink: CaptureSink, tmp_path: Path
) -> None:
    running = Pipeline(settings)
    await running.start(dkim_dir=tmp_path / "none", dkim_required=True)
    try:
        ids = await send_many(js, ["reader@example.com"])
        assert (await wait_settled(js, ids))[ids[0]] == ["rejected"]
    finally:
        await running.stop()
    assert "no DKIM key for jetpost.test" in getattr((await history(js, ids[0]))[-1], "reason", "")
    assert sink.received == []


async def test_dkim_check_compares_the_published_record(tmp_path: Path) -> None:
    _, record = keygen(tmp_path, "jetpost.test", "s3")
    _, other = keygen(tmp_path / "other", "jetpost.test", "s3")
    dns = DnsResponder({(record.name, "TXT"): [f'"{record.value[:200]}" "{record.value[200:]}"']})
    await dns.start()
    try:
        assert await check(tmp_path, "jetpost.test", dns.address) == [
            (record.name, True, "matches")
        ]
        dns.records[(record.name, "TXT")] = [f'"{other.value[:200]}" "{other.value[200:]}"']
        [(_, ok, detail)] = await check(tmp_path, "jetpost.test", dns.address)
        assert not ok and "differs" in detail
    finally:
        await dns.stop()
    with pytest.raises(FileExistsError):
        keygen(tmp_path, "jetpost.test", "s3")  # never over an existing key

"""Attachments end to end: base64 and uploaded content, an inline image by cid:, the
MIME tree, and each part's bytes as received; limits and blocked types."""

from __future__ import annotations

import base64
import email
import email.policy
import hashlib
import os
from email.message import EmailMessage

from nats.js import JetStreamContext

from services.capture import CaptureSink
from shared.attachments import sanitize_filename
from tests.eventlog_reader import history, wait_for_event
from tests.integration.test_api_support import (  # noqa: F401
    Api,
    api_fixture,
    assert_problem,
)

PNG = b"\x89PNG\r\n\x1a\n" + os.urandom(3000)
PDF = b"%PDF-1.4\n" + os.urandom(200_000)


def tree(msg: EmailMessage) -> list[str]:
    return [part.get_content_type() for part in msg.walk()]


async def test_attachments_round_trip(api: Api, js: JetStreamContext, sink: CaptureSink) -> None:
    headers = await api.as_("send")
    pdf_headers = {**headers, "content-type": "application/pdf"}
    upload = await api.client.post("/v1/attachments", content=PDF, headers=pdf_headers)
    assert upload.status_code == 201, upload.text
    assert upload.json()["id"] == hashlib.sha256(PDF).hexdigest()
    body = {
        "to": "alice@example.com", "subject": "Your report", "text": "See attached.",
        "html": '<p>Logo: <img src="cid:logo@x"></p>',
        "attachments": [
            {"filename": "../../etc/report.pdf", "content_type": "application/pdf",
             "object": upload.json()["id"]},
            {"filename": "logo.png", "content_type": "image/png", "content_id": "logo@x",
             "content": base64.b64encode(PNG).decode()},
        ],
    }  # fmt: skip
    sent = await api.client.post("/v1/messages", json=body, headers=headers)
    assert sent.status_code == 202, sent.text
    mid = sent.json()["id"]
    await wait_for_event(js, mid, "delivered")
    events = await history(js, mid)
    assert max(len(e.model_dump_json()) for e in events) < 10_000  # content never in events
    [mail] = await sink.wait_for(1, timeout=10)
    msg = email.message_from_bytes(mail.data, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    assert tree(msg) == [
        "multipart/mixed", "multipart/alternative", "text/plain",
        "multipart/related", "text/html", "image/png", "application/pdf",
    ]  # fmt: skip
    parts = {p.get_content_type(): p for p in msg.walk()}
    assert parts["image/png"].get_content() == PNG
    assert parts["image/png"]["Content-ID"] == "<logo@x>"
    assert parts["application/pdf"].get_content() == PDF
    assert parts["application/pdf"].get_filename() == "report.pdf"


async def test_attachment_limits(api: Api) -> None:
    headers = await api.as_("send")
    base = {"to": "a@example.com", "subject": "s", "text": "t"}
    exe = {**base, "attachments": [{"filename": "run.EXE", "content": "AAAA"}]}
    refused = await api.client.post("/v1/messages", json=exe, headers=headers)
    assert ".exe" in assert_problem(refused, 422)["detail"]
    bad = {**base, "attachments": [{"filename": "a.txt", "content": "***"}]}
    assert_problem(await api.client.post("/v1/messages", json=bad, headers=headers), (400, 422))
    missing = {**base, "attachments": [{"filename": "a.txt", "object": "0" * 64}]}
    assert_problem(await api.client.post("/v1/messages", json=missing, headers=headers), 422)
    many = {**base, "attachments": [{"filename": f"{i}.txt", "content": "QQ=="}
                                    for i in range(11)]}  # fmt: skip
    assert_problem(await api.client.post("/v1/messages", json=many, headers=headers), 422)
    big = await api.client.post("/v1/attachments", content=b"x" * 10_000_001, headers=headers)
    assert_problem(big, 413)


def test_filenames_are_sanitised() -> None:
    assert sanitize_filename("../../etc/passwd") == "passwd"
    assert sanitize_filename('C:\\temp\\a"b<c>.pdf') == "abc.pdf"
    assert sanitize_filename("..\r\nBcc: x") == "Bcc x"
    assert sanitize_filename("") == "attachment"
    assert sanitize_filename("x" * 300 + ".pdf").endswith(".pdf")

"""Amazon SNS as the tests play it: an RSA key of our own with a self-signed
certificate, SNS messages signed with it (the canonical string is spelled out here
again, independently of services.feedback.sns), and an httpx.MockTransport that
serves the certificate and records every request."""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

HOST = "sns.eu-test-1.amazonaws.com"
TOPIC = "arn:aws:sns:eu-test-1:111122223333:jetpost-feedback"
NOTIFICATION_FIELDS = ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type")
CONFIRMATION_FIELDS = ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token",
                       "TopicArn", "Type")  # fmt: skip


def make_certificate(
    key: rsa.RSAPrivateKey, *, valid_from: datetime | None = None, days: int = 30
) -> bytes:
    start = valid_from or datetime.now(UTC) - timedelta(days=1)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + timedelta(days=days))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


@dataclass
class SnsSigner:
    key: rsa.RSAPrivateKey
    cert_pem: bytes
    host: str = HOST
    topic: str = TOPIC
    requests: list[httpx.Request] = field(default_factory=list)
    extra: dict[str, bytes] = field(default_factory=dict)  # more URLs the transport serves

    @classmethod
    def create(cls, *, host: str = HOST, topic: str = TOPIC, **cert: Any) -> SnsSigner:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return cls(key, make_certificate(key, **cert), host, topic)

    @property
    def cert_url(self) -> str:
        return f"https://{self.host}/SimpleNotificationService-0123456789abcdef.pem"

    def sign(self, message: dict[str, Any], version: str = "1") -> dict[str, Any]:
        names = NOTIFICATION_FIELDS if message["Type"] == "Notification" else CONFIRMATION_FIELDS
        text = "".join(f"{n}\n{message[n]}\n" for n in names if n in message)
        # SignatureVersion 1 is SHA1withRSA: SNS's default, so it must verify.
        algorithm = hashes.SHA1() if version == "1" else hashes.SHA256()  # noqa: S303
        signature = self.key.sign(text.encode(), padding.PKCS1v15(), algorithm)
        return {**message, "SignatureVersion": version,
                "Signature": base64.b64encode(signature).decode(),
                "SigningCertURL": message.get("SigningCertURL", self.cert_url)}  # fmt: skip

    def notification(
        self, payload: dict[str, Any] | str, *, message_id: str | None = None,
        version: str = "1", subject: str | None = None,
    ) -> dict[str, Any]:  # fmt: skip
        message: dict[str, Any] = {
            "Type": "Notification",
            "MessageId": message_id or str(uuid.uuid4()),
            "TopicArn": self.topic,
            "Message": payload if isinstance(payload, str) else json.dumps(payload),
            "Timestamp": "2025-05-06T09:15:33.000Z",
            "UnsubscribeURL": f"https://{self.host}/?Action=Unsubscribe&SubscriptionArn=x",
        }
        if subject is not None:
            message["Subject"] = subject
        return self.sign(message, version)

    def confirmation(self, kind: str = "SubscriptionConfirmation") -> dict[str, Any]:
        token = uuid.uuid4().hex * 2
        return self.sign({
            "Type": kind,
            "MessageId": str(uuid.uuid4()),
            "Token": token,
            "TopicArn": self.topic,
            "Message": f"You have chosen to subscribe to the topic {self.topic}.\n"
                       "To confirm the subscription, visit the SubscribeURL included in this "
                       "message.",
            "SubscribeURL": f"https://{self.host}/?Action=ConfirmSubscription"
                            f"&TopicArn={self.topic}&Token={token}",
            "Timestamp": "2025-05-06T09:00:00.000Z",
        })  # fmt: skip

    def transport(self) -> httpx.MockTransport:
        def handle(request: httpx.Request) -> httpx.Response:
            self.requests.append(request)
            url = str(request.url)
            if url == self.cert_url:
                return httpx.Response(200, content=self.cert_pem)
            if url in self.extra:
                return httpx.Response(200, content=self.extra[url])
            if request.url.params.get("Action") == "ConfirmSubscription":
                return httpx.Response(200, text="<ConfirmSubscriptionResponse/>")
            return httpx.Response(404)

        return httpx.MockTransport(handle)

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=self.transport())

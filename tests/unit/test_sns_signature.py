"""SNS message signatures: versions 1 (SHA1) and 2 (SHA256) verify against the
certificate at an allow-listed https URL; a tampered field, another key, a foreign or
plain-http certificate URL, an expired certificate all fail. Certificates are served
by httpx.MockTransport: nothing leaves the machine."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from services.feedback.sns import (
    SnsError,
    SnsRejected,
    SnsUnavailable,
    SnsVerifier,
    canonical,
    confirm_subscription,
    host_allowed,
    host_pattern,
    parse_message,
)
from tests.sns_signer import HOST, SnsSigner

HOSTS = ("sns.*.amazonaws.com",)


@pytest.fixture(scope="module")
def signer() -> SnsSigner:
    return SnsSigner.create()


@pytest.fixture
async def http(signer: SnsSigner) -> AsyncIterator[httpx.AsyncClient]:
    signer.requests.clear()
    async with signer.client() as client:
        yield client


def message(data: dict[str, Any]) -> Any:
    return parse_message(json.dumps(data).encode())


@pytest.mark.parametrize("version", ["1", "2"])
async def test_signed_messages_verify(
    signer: SnsSigner, http: httpx.AsyncClient, version: str
) -> None:
    verifier = SnsVerifier(http, HOSTS)
    await verifier.verify(message(signer.notification({"a": 1}, version=version)))
    await verifier.verify(message(signer.notification("plain", subject="Hi", version=version)))
    await verifier.verify(message(signer.confirmation()))
    await verifier.verify(message(signer.confirmation("UnsubscribeConfirmation")))
    # The certificate was fetched once, then remembered.
    assert [str(r.url) for r in signer.requests] == [signer.cert_url]


def test_canonical_string_follows_the_type() -> None:
    fields = {"Type": "Notification", "MessageId": "m", "TopicArn": "t", "Message": "x\ny",
              "Timestamp": "ts", "SignatureVersion": "1", "Signature": "s",
              "SigningCertURL": "u", "UnsubscribeURL": "not signed"}  # fmt: skip
    assert canonical(message(fields)) == (
        b"Message\nx\ny\nMessageId\nm\nTimestamp\nts\nTopicArn\nt\nType\nNotification\n"
    )
    with_subject = canonical(message({**fields, "Subject": "S"}))
    assert b"MessageId\nm\nSubject\nS\nTimestamp\n" in with_subject


@pytest.mark.parametrize(
    "change",
    [
        {"Message": '{"a": 2}'},
        {"MessageId": "another"},
        {"TopicArn": "arn:aws:sns:eu-test-1:111122223333:other"},
        {"Subject": "added"},
        {"Timestamp": "2030-01-01T00:00:00.000Z"},
        {"SignatureVersion": "2"},  # signed as 1: SHA256 does not match
    ],
)
async def test_a_changed_field_fails(
    signer: SnsSigner, http: httpx.AsyncClient, change: dict[str, str]
) -> None:
    tampered = {**signer.notification({"a": 1}), **change}
    with pytest.raises(SnsRejected, match="does not match"):
        await SnsVerifier(http, HOSTS).verify(message(tampered))


async def test_another_key_fails(signer: SnsSigner, http: httpx.AsyncClient) -> None:
    impostor = SnsSigner.create()  # its own key, pointing at the real certificate URL
    with pytest.raises(SnsRejected, match="does not match"):
        await SnsVerifier(http, HOSTS).verify(message(impostor.notification({"a": 1})))


@pytest.mark.parametrize(
    ("url", "why"),
    [
        (f"http://{HOST}/SimpleNotificationService-1.pem", "https"),
        (f"https://{HOST}:8443/SimpleNotificationService-1.pem", "https"),
        (f"https://user@{HOST}/SimpleNotificationService-1.pem", "https"),
        ("https://evil.example.com/SimpleNotificationService-1.pem", "not an allowed"),
        ("https://sns.evil.s3.amazonaws.com/SimpleNotificationService-1.pem", "not an allowed"),
        ("https://sns.eu-test-1.amazonaws.com.evil.com/cert.pem", "not an allowed"),
        (f"https://{HOST}/cert.txt", ".pem"),
        ("not a url at all", "https"),
    ],
)
async def test_foreign_certificate_urls_are_refused_unfetched(
    signer: SnsSigner, http: httpx.AsyncClient, url: str, why: str
) -> None:
    data = signer.sign({**signer.notification({"a": 1}), "SigningCertURL": url})
    with pytest.raises(SnsRejected, match=why):
        await SnsVerifier(http, HOSTS).verify(message(data))
    assert signer.requests == []


async def test_bad_signatures_and_versions(signer: SnsSigner, http: httpx.AsyncClient) -> None:
    verifier = SnsVerifier(http, HOSTS)
    good = signer.notification({"a": 1})
    with pytest.raises(SnsRejected, match="SignatureVersion"):
        await verifier.verify(message({**good, "SignatureVersion": "3"}))
    with pytest.raises(SnsRejected, match="base64"):
        await verifier.verify(message({**good, "Signature": "!!not base64!!"}))
    with pytest.raises(SnsRejected, match="does not match"):
        await verifier.verify(message({**good, "Signature": "AAAA"}))


async def test_expired_or_missing_certificates(signer: SnsSigner) -> None:
    old = SnsSigner.create(valid_from=datetime.now(UTC) - timedelta(days=60), days=30)
    async with old.client() as http:
        with pytest.raises(SnsRejected, match="not valid now"):
            await SnsVerifier(http, HOSTS).verify(message(old.notification({"a": 1})))
    gone = SnsSigner(signer.key, signer.cert_pem, host="sns.eu-test-2.amazonaws.com")
    gone_url = gone.cert_url

    def not_found(request: httpx.Request) -> httpx.Response:
        return httpx.Response(404 if str(request.url) == gone_url else 200, content=b"junk")

    async with httpx.AsyncClient(transport=httpx.MockTransport(not_found)) as http:
        with pytest.raises(SnsRejected, match="no signing certificate"):
            await SnsVerifier(http, HOSTS).verify(message(gone.notification({"a": 1})))
        other = SnsSigner(signer.key, signer.cert_pem, host="sns.eu-test-3.amazonaws.com")
        with pytest.raises(SnsRejected, match="not a PEM"):
            await SnsVerifier(http, HOSTS).verify(message(other.notification({"a": 1})))


async def test_unreachable_certificate_is_unavailable(signer: SnsSigner) -> None:
    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    def broken(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503)

    for handler in (down, broken):
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
            with pytest.raises(SnsUnavailable):
                await SnsVerifier(http, HOSTS).verify(message(signer.notification({"a": 1})))


def test_parse_refuses_what_is_not_sns() -> None:
    for body in (b"{", b"[]", b'{"Type": "Gossip"}', b'{"Type": "Notification"}', b"\xff"):
        with pytest.raises(SnsError):
            parse_message(body)


def test_host_patterns_match_one_label_per_star() -> None:
    assert host_allowed("sns.us-east-1.amazonaws.com", HOSTS)
    assert host_allowed("SNS.EU-WEST-1.AMAZONAWS.COM", HOSTS)
    assert not host_allowed("sns.amazonaws.com", HOSTS)
    assert not host_allowed("sns.a.b.amazonaws.com", HOSTS)
    assert not host_allowed("sns.us-east-1.amazonaws.com.example", HOSTS)
    assert host_allowed("sns.cn-north-1.amazonaws.com.cn", ("sns.*.amazonaws.com.cn",))
    with pytest.raises(ValueError, match="host pattern"):
        host_pattern("sns.*.amazon aws.com")


async def test_confirm_subscription_visits_the_subscribe_url(
    signer: SnsSigner, http: httpx.AsyncClient
) -> None:
    confirmation = message(signer.confirmation())
    await confirm_subscription(http, confirmation, HOSTS)
    (visit,) = signer.requests
    assert visit.url.params["Action"] == "ConfirmSubscription"
    assert visit.url.params["Token"] == confirmation.fields["Token"]
    elsewhere = message({**signer.confirmation(), "SubscribeURL": "https://evil.example.com/x"})
    with pytest.raises(SnsRejected, match="not an allowed"):
        await confirm_subscription(http, elsewhere, HOSTS)
    assert len(signer.requests) == 1

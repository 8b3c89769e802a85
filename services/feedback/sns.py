"""Amazon SNS messages posted to an HTTP(S) subscription, and the proof that SNS sent them.

Anyone can POST to a webhook URL, and anyone can own an SNS topic. A message is
believed only when its signature verifies against the certificate at its
SigningCertURL, and that URL is https on an allow-listed SNS host (so the key is
AWS's, fetched over verified TLS); the caller then checks the TopicArn against the
topics it subscribed. Signature version 1 is SHA1withRSA, version 2 SHA256withRSA,
both over the canonical string of the message's fields (AWS's "verify the signature
of an SNS message"). Certificates are fetched through an injected httpx client and
kept until they expire.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit

import httpx
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

log = logging.getLogger("jetpost.feedback.sns")

# The fields each message type signs, in the order they are signed (alphabetical).
_CONFIRMATION = ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type")
SIGNED_FIELDS: dict[str, tuple[str, ...]] = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": _CONFIRMATION,
    "UnsubscribeConfirmation": _CONFIRMATION,
}
OPTIONAL_FIELDS = frozenset({"Subject"})
HASHES: dict[str, type[hashes.HashAlgorithm]] = {"1": hashes.SHA1, "2": hashes.SHA256}
MAX_CERT_BYTES = 64 * 1024
_LABEL = "[a-z0-9](?:[a-z0-9-]*[a-z0-9])?"


class SnsError(ValueError):
    """The body is not an SNS message (400)."""


class SnsRejected(Exception):
    """An SNS message that does not prove where it came from (403)."""


class SnsUnavailable(Exception):
    """The signing certificate (or the SubscribeURL) cannot be reached now (503)."""


@dataclass(frozen=True)
class SnsMessage:
    type: str
    message_id: str
    topic_arn: str
    message: str
    timestamp: str
    signature_version: str
    signature: str
    signing_cert_url: str
    fields: dict[str, str]  # every string field as received, for the canonical string

    @property
    def subscribe_url(self) -> str | None:
        return self.fields.get("SubscribeURL")


def parse_message(body: bytes) -> SnsMessage:
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SnsError(f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise SnsError("an SNS message is a JSON object")
    kind = data.get("Type")
    if kind not in SIGNED_FIELDS:
        raise SnsError(f"Type: expected one of {', '.join(SIGNED_FIELDS)}, got {kind!r}")
    fields = {k: v for k, v in data.items() if isinstance(v, str)}
    needed = (*SIGNED_FIELDS[kind], "SignatureVersion", "Signature", "SigningCertURL")
    missing = [f for f in needed if f not in fields and f not in OPTIONAL_FIELDS]
    if missing:
        raise SnsError(f"{kind} without {', '.join(missing)}")
    return SnsMessage(
        type=kind, message_id=fields["MessageId"], topic_arn=fields["TopicArn"],
        message=fields["Message"], timestamp=fields["Timestamp"],
        signature_version=fields["SignatureVersion"], signature=fields["Signature"],
        signing_cert_url=fields["SigningCertURL"], fields=fields,
    )  # fmt: skip


def canonical(message: SnsMessage) -> bytes:
    """The string SNS signed: `name\\nvalue\\n` for each signed field present."""
    parts = []
    for name in SIGNED_FIELDS[message.type]:
        if name in message.fields:
            parts.append(f"{name}\n{message.fields[name]}\n")
    return "".join(parts).encode()


def host_pattern(pattern: str) -> re.Pattern[str]:
    """`sns.*.amazonaws.com` -> a regex where `*` is exactly one DNS label, so
    `sns.evil.s3.amazonaws.com` (an S3 bucket named `sns.evil`) does not match."""
    labels = pattern.strip().lower().split(".")
    if not pattern.strip() or any(lb != "*" and not re.fullmatch(_LABEL, lb) for lb in labels):
        raise ValueError(f"not a host pattern: {pattern!r} (labels, or * for one label)")
    return re.compile(r"\.".join(_LABEL if lb == "*" else re.escape(lb) for lb in labels))


def host_allowed(host: str, patterns: Iterable[str]) -> bool:
    return any(host_pattern(p).fullmatch(host.lower()) for p in patterns)


def check_url(url: str, patterns: Iterable[str], *, what: str, suffix: str = "") -> None:
    """SnsRejected unless `url` is https, on port 443, on an allow-listed host."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise SnsRejected(f"{what} is not a URL") from None
    host = parts.hostname or ""
    if parts.scheme != "https" or port not in (None, 443) or parts.username or parts.password:
        raise SnsRejected(f"{what} must be a plain https URL: {url!r}")
    if not host_allowed(host, patterns):
        raise SnsRejected(f"{what} host {host!r} is not an allowed SNS host")
    if suffix and not parts.path.endswith(suffix):
        raise SnsRejected(f"{what} is not a {suffix} file: {url!r}")


class SnsVerifier:
    """Checks signatures; remembers each fetched certificate's key until it expires."""

    def __init__(
        self, http: httpx.AsyncClient, cert_hosts: Iterable[str], *, max_certs: int = 32
    ) -> None:
        self.http = http
        self.cert_hosts = tuple(cert_hosts)
        for pattern in self.cert_hosts:
            host_pattern(pattern)  # a bad pattern fails here, at start-up
        self.max_certs = max_certs
        self._keys: dict[str, tuple[RSAPublicKey, datetime]] = {}

    async def verify(self, message: SnsMessage) -> None:
        algorithm = HASHES.get(message.signature_version)
        if algorithm is None:
            raise SnsRejected(f"unknown SignatureVersion {message.signature_version!r}")
        check_url(message.signing_cert_url, self.cert_hosts, what="SigningCertURL", suffix=".pem")
        try:
            signature = base64.b64decode(message.signature, validate=True)
        except (binascii.Error, ValueError):
            raise SnsRejected("Signature is not base64") from None
        key = await self._key(message.signing_cert_url)
        try:
            key.verify(signature, canonical(message), padding.PKCS1v15(), algorithm())
        except InvalidSignature:
            raise SnsRejected("the signature does not match the message") from None

    async def _key(self, url: str) -> RSAPublicKey:
        now = datetime.now(UTC)
        cached = self._keys.get(url)
        if cached is not None and cached[1] > now:
            return cached[0]
        try:
            response = await self.http.get(url, follow_redirects=False)
        except httpx.HTTPError as exc:
            raise SnsUnavailable(f"signing certificate not fetched: {exc!r}") from exc
        if response.status_code >= 500:
            raise SnsUnavailable(f"signing certificate: HTTP {response.status_code}")
        if response.status_code != 200 or len(response.content) > MAX_CERT_BYTES:
            raise SnsRejected(f"no signing certificate at {url} (HTTP {response.status_code})")
        try:
            cert = x509.load_pem_x509_certificate(response.content)
        except ValueError:
            raise SnsRejected(f"not a PEM certificate at {url}") from None
        key = cert.public_key()
        if not isinstance(key, RSAPublicKey):
            raise SnsRejected("the signing certificate's key is not RSA")
        if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
            raise SnsRejected("the signing certificate is not valid now")
        if len(self._keys) >= self.max_certs:
            self._keys.pop(next(iter(self._keys)))  # the oldest; SNS rotates rarely
        self._keys[url] = (key, cert.not_valid_after_utc)
        return key


async def confirm_subscription(
    http: httpx.AsyncClient, message: SnsMessage, hosts: Iterable[str]
) -> None:
    """Visit a (verified) SubscriptionConfirmation's SubscribeURL, which confirms it."""
    url = message.subscribe_url or ""
    check_url(url, hosts, what="SubscribeURL")
    try:
        response = await http.get(url, follow_redirects=False)
    except httpx.HTTPError as exc:
        raise SnsUnavailable(f"SubscribeURL not reached: {exc!r}") from exc
    if response.status_code != 200:
        raise SnsUnavailable(f"SubscribeURL answered HTTP {response.status_code}")
    log.info("confirmed the SNS subscription to %s", message.topic_arn)

"""Endpoint secrets: made here, kept only encrypted, and used to sign bodies.

A secret is `whsec_<base64 of 24 random bytes>` (the Standard Webhooks form). It is
shown once, when made; everywhere else (commands, events, read models) it travels
sealed with Fernet under keys from JETPOST_WEBHOOK_KEYS or `<data dir>/webhook.key`,
so a dump of the log or the database alone does not reveal it. Bodies are signed
with the `standardwebhooks` package; during a rotation every live secret signs, and
a receiver accepts any matching `v1,` signature.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Sequence
from datetime import datetime

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from standardwebhooks import Webhook

from shared.settings import ConfigError, Settings, parse_token_keys
from shared.tokens import _persisted_key

KEY_FILE = "webhook.key"
SECRET_PREFIX = "whsec_"  # noqa: S105 - the Standard Webhooks form, not a secret


class SealError(ValueError):
    """A sealed secret that none of the keys opens (a key was changed or dropped)."""


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()


class SecretBox:
    """Seals with the first key, opens with any (keys rotate like JETPOST_TOKEN_KEYS)."""

    def __init__(self, keys: Sequence[str]) -> None:
        derived = [base64.urlsafe_b64encode(hashlib.sha256(k.encode()).digest()) for k in keys]
        self._fernet = MultiFernet([Fernet(k) for k in derived])

    def seal(self, secret: str) -> str:
        return self._fernet.encrypt(secret.encode()).decode()

    def open(self, sealed: str) -> str:
        try:
            return self._fernet.decrypt(sealed.encode()).decode()
        except (InvalidToken, ValueError):
            raise SealError("a webhook secret does not open with JETPOST_WEBHOOK_KEYS") from None

    @classmethod
    def from_settings(cls, settings: Settings) -> SecretBox:
        if settings.webhook_keys is not None and settings.webhook_keys.get_secret_value().strip():
            try:
                return cls(parse_token_keys(settings.webhook_keys.get_secret_value()))
            except ValueError as exc:
                raise ConfigError(f"JETPOST_WEBHOOK_KEYS: {exc}") from None
        path = settings.data_dir / KEY_FILE
        try:
            return cls([_persisted_key(path)])
        except (OSError, UnicodeDecodeError) as exc:
            reason = f"unset, and {path} is unusable: {exc}"
            raise ConfigError(f"JETPOST_WEBHOOK_KEYS: {reason}") from None


class Signer:
    """Standard Webhooks headers for a body, signed with every given secret."""

    def __init__(self, plain_secrets: Sequence[str]) -> None:
        self._hooks = [Webhook(s) for s in plain_secrets]

    def headers(self, webhook_id: str, at: datetime, body: bytes) -> dict[str, str]:
        text = body.decode()
        signatures = " ".join(h.sign(webhook_id, at, text) for h in self._hooks)
        return {
            "webhook-id": webhook_id,
            "webhook-timestamp": str(int(at.timestamp())),
            "webhook-signature": signatures,
            "content-type": "application/json",
            "user-agent": "jetpost-webhooks",
        }

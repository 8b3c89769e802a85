"""HMAC-signed tokens for the links jetpost puts in mail: click, open, unsubscribe and
the application's own action links (activation, password reset).

A token is `v1.<payload>.<mac>`, both parts url-safe base64 without padding, so it
fits a URL path, a query string and a mailto: subject unchanged. The MAC is
HMAC-SHA256 (truncated to 128 bits) over the version, the purpose and the payload:
a click token is no unsubscribe token, and nothing in a token can be changed without
the key. The payload is readable (it is signed, not encrypted): it holds only what
the link's recipient already knows.

Keys rotate with a `KeyRing`: tokens are signed with the first key and verified
against every key, so a new key goes first and the old one stays until the links
signed with it no longer matter. Verification compares MACs with
`hmac.compare_digest` against every key. Everything here is pure except
`load_key_ring`, which reads (or creates, once) `<data_dir>/token.key` when
JETPOST_TOKEN_KEYS is not set.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import json
import os
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from shared.settings import MIN_TOKEN_KEY_LENGTH as MIN_KEY_LENGTH
from shared.settings import ConfigError, Settings, parse_token_keys
from shared.subjects import MESSAGE_ID_RE

VERSION = "v1"
Purpose = Literal["click", "open", "unsub", "action"]
MAX_TOKEN_LENGTH = 8192  # longer input is refused before any decoding
KEY_FILE = "token.key"
_MAC_BYTES = 16
_B64_RE = re.compile(r"^[A-Za-z0-9_-]+$")


class TokenError(ValueError):
    """Not a token we signed: malformed, tampered, signed with another key, or made
    for another purpose. Deliberately says no more than that."""


class TokenExpired(TokenError):
    """Signed by us, but past its expiry."""

    def __init__(self, expires_at: datetime) -> None:
        super().__init__(f"expired at {expires_at.isoformat()}")
        self.expires_at = expires_at


@dataclass(frozen=True)
class Verified:
    payload: dict[str, Any]
    expires_at: datetime | None


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    if not _B64_RE.match(text):
        raise TokenError("malformed token")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise TokenError("malformed token") from None


def _timestamp(value: datetime | int) -> int:
    return int(value.timestamp()) if isinstance(value, datetime) else int(value)


class KeyRing:
    """Signing keys, newest first: sign with the first, verify with any."""

    def __init__(self, keys: Sequence[str | bytes]) -> None:
        raw = tuple(k.encode() if isinstance(k, str) else bytes(k) for k in keys)
        if not raw:
            raise ValueError("a key ring needs at least one key")
        if any(len(k) < MIN_KEY_LENGTH for k in raw):
            raise ValueError(f"token keys are at least {MIN_KEY_LENGTH} bytes")
        self._keys = raw

    def __repr__(self) -> str:  # never the keys themselves
        return f"KeyRing({len(self._keys)} keys)"

    @staticmethod
    def _mac(key: bytes, purpose: str, body: str) -> bytes:
        message = f"jetpost:{VERSION}:{purpose}:{body}".encode("ascii")
        return hmac.new(key, message, hashlib.sha256).digest()[:_MAC_BYTES]

    def sign(
        self, purpose: Purpose, payload: dict[str, Any], *, expires_at: datetime | int | None = None
    ) -> str:
        """The same payload (and expiry) always gives the same token."""
        content: dict[str, Any] = {"d": payload}
        if expires_at is not None:
            content["x"] = _timestamp(expires_at)
        body = _b64encode(json.dumps(content, sort_keys=True, separators=(",", ":")).encode())
        return f"{VERSION}.{body}.{_b64encode(self._mac(self._keys[0], purpose, body))}"

    def verify(self, token: str, purpose: Purpose, *, now: datetime | None = None) -> Verified:
        """The payload of a token we signed for `purpose`; TokenError (or TokenExpired)
        otherwise."""
        if not isinstance(token, str) or len(token) > MAX_TOKEN_LENGTH:
            raise TokenError("malformed token")
        parts = token.split(".")
        if len(parts) != 3 or parts[0] != VERSION:
            raise TokenError("malformed token")
        _, body, mac = parts
        if not _B64_RE.match(body) or not _B64_RE.match(mac):
            raise TokenError("malformed token")
        # Compared as text with the canonical encoding: base64 has spare bits in its
        # last character, and a token must have exactly one spelling.
        matched = False
        for key in self._keys:  # every key, without stopping early
            expected = _b64encode(self._mac(key, purpose, body))
            matched |= hmac.compare_digest(expected.encode(), mac.encode())
        if not matched:
            raise TokenError("bad signature")
        try:
            content = json.loads(_b64decode(body))
            payload, expiry = content["d"], content.get("x")
            if not isinstance(payload, dict) or not (expiry is None or type(expiry) is int):
                raise TypeError(payload)
            expires_at = datetime.fromtimestamp(expiry, UTC) if expiry is not None else None
        except (ValueError, TypeError, KeyError, AttributeError, OverflowError, OSError):
            raise TokenError("malformed token") from None
        if expires_at is not None and (now or datetime.now(UTC)) >= expires_at:
            raise TokenExpired(expires_at)
        return Verified(payload, expires_at)


# -- the tokens jetpost itself puts in mail ------------------------------------------


def _field(payload: dict[str, Any], name: str) -> str:
    value = payload.get(name)
    if not isinstance(value, str):
        raise TokenError("malformed token")
    return value


def _message_id(payload: dict[str, Any]) -> str:
    message_id = _field(payload, "m")
    if not MESSAGE_ID_RE.match(message_id):
        raise TokenError("malformed token")
    return message_id


def is_web_url(url: str) -> bool:
    scheme = urlsplit(url).scheme.lower()
    return scheme in ("http", "https") and bool(urlsplit(url).netloc)


def click_token(keys: KeyRing, message_id: str, url: str) -> str:
    return keys.sign("click", {"m": message_id, "u": url})


def read_click(keys: KeyRing, token: str) -> tuple[str, str]:
    """(message id, the URL signed at render time); only ever an http(s) URL."""
    payload = keys.verify(token, "click").payload
    url = _field(payload, "u")
    if not is_web_url(url):
        raise TokenError("malformed token")
    return _message_id(payload), url


def open_token(keys: KeyRing, message_id: str) -> str:
    return keys.sign("open", {"m": message_id})


def read_open(keys: KeyRing, token: str) -> str:
    return _message_id(keys.verify(token, "open").payload)


@dataclass(frozen=True)
class Unsubscribe:
    message_id: str
    recipient: str
    scope: str


def unsubscribe_token(keys: KeyRing, message_id: str, recipient: str, scope: str) -> str:
    return keys.sign("unsub", {"m": message_id, "r": recipient, "s": scope})


def read_unsubscribe(keys: KeyRing, token: str) -> Unsubscribe:
    payload = keys.verify(token, "unsub").payload
    return Unsubscribe(_message_id(payload), _field(payload, "r"), _field(payload, "s"))


# -- action tokens: the application's own links (activation, password reset) ----------


@dataclass(frozen=True)
class ActionClaims:
    action: str
    subject: str
    expires_at: datetime


def action_token(keys: KeyRing, action: str, subject: str, *, expires_at: datetime | int) -> str:
    if not action:
        raise ValueError("an action token needs an action")
    return keys.sign("action", {"a": action, "s": subject}, expires_at=expires_at)


def verify_action_token(
    keys: KeyRing, token: str, action: str, *, now: datetime | None = None
) -> ActionClaims:
    """The subject of a valid, unexpired token for `action`; TokenExpired past its
    expiry, TokenError for anything else (tampered, another action or key)."""
    verified = keys.verify(token, "action", now=now)
    signed_action = _field(verified.payload, "a")
    if signed_action != action or verified.expires_at is None:
        raise TokenError("not a token for this action")
    return ActionClaims(signed_action, _field(verified.payload, "s"), verified.expires_at)


def action_url(
    keys: KeyRing, base_url: str, action: str, subject: str, *, expires_at: datetime | int
) -> str:
    """`base_url` with `token=<action token>` added to its query."""
    if not is_web_url(base_url):
        raise ValueError(f"signed_url needs an http(s) URL, got {base_url!r}")
    parts = urlsplit(base_url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "token"]
    query.append(("token", action_token(keys, action, subject, expires_at=expires_at)))
    return urlunsplit(parts._replace(query=urlencode(query)))


# -- keys from the configuration ---------------------------------------------------------


def _persisted_key(path: Path) -> str:
    """The key in `path`, made once (0600) when missing. Written to a temporary file
    and linked into place, so processes starting together agree on one key."""
    with contextlib.suppress(FileNotFoundError):
        return path.read_text(encoding="ascii").strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as out:
            out.write(secrets.token_urlsafe(32) + "\n")
            out.flush()
            os.fsync(out.fileno())
        with contextlib.suppress(FileExistsError):  # another process was first: use its key
            os.link(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return path.read_text(encoding="ascii").strip()


def load_key_ring(settings: Settings) -> KeyRing:
    """JETPOST_TOKEN_KEYS when set; else the key kept in `<data_dir>/token.key`
    (created on first use), so links keep working across restarts."""
    if settings.token_keys is not None:
        return KeyRing(parse_token_keys(settings.token_keys.get_secret_value()))
    path = settings.data_dir / KEY_FILE
    try:
        key = _persisted_key(path)
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"JETPOST_TOKEN_KEYS: unset, and {path} is unusable: {exc}") from None
    if len(key) < MIN_KEY_LENGTH:
        raise ConfigError(f"JETPOST_TOKEN_KEYS: unset, and the key in {path} is too short")
    return KeyRing([key])

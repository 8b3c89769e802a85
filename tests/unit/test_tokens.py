"""shared/tokens.py: signed, versioned, purpose-bound tokens; key rotation; expiry;
action tokens; the key kept in <data_dir>/token.key."""

from __future__ import annotations

import hmac
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from shared.settings import ConfigError, load_settings
from shared.tokens import (
    KEY_FILE,
    KeyRing,
    TokenError,
    TokenExpired,
    action_url,
    click_token,
    load_key_ring,
    open_token,
    read_click,
    read_open,
    read_unsubscribe,
    unsubscribe_token,
    verify_action_token,
)

KEYS = KeyRing(["first-secret-0123456789"])
OTHER = KeyRing(["someone-elses-secret-9876"])
NOW = datetime(2030, 1, 1, tzinfo=UTC)


def test_round_trip_and_determinism() -> None:
    token = KEYS.sign("click", {"m": "msg-1", "u": "https://example.com/a?b=c"})
    assert token.startswith("v1.") and token.count(".") == 2
    assert all(c.isalnum() or c in "-_." for c in token)  # url-safe as it is
    assert KEYS.verify(token, "click").payload == {"m": "msg-1", "u": "https://example.com/a?b=c"}
    assert KEYS.sign("click", {"u": "https://example.com/a?b=c", "m": "msg-1"}) == token


def test_every_changed_character_is_refused() -> None:
    token = click_token(KEYS, "msg-1", "https://example.com/")
    for i, char in enumerate(token):
        for other in {"A", "a", "0", "-", "_", "."} - {char}:
            changed = token[:i] + other + token[i + 1 :]
            with pytest.raises(TokenError):
                read_click(KEYS, changed)


@pytest.mark.parametrize(
    "token",
    ["", "v1", "v1..", "v1.a.b", "v2.e30.AAAA", "x" * 10_000, "v1.e30.AAAA.AAAA", "v1.e 30.AA"],
)
def test_malformed_tokens_are_refused(token: str) -> None:
    with pytest.raises(TokenError):
        KEYS.verify(token, "open")


def test_a_token_is_only_good_for_its_purpose() -> None:
    token = open_token(KEYS, "msg-1")
    assert read_open(KEYS, token) == "msg-1"
    for purpose in ("click", "unsub", "action"):
        with pytest.raises(TokenError):
            KEYS.verify(token, purpose)


def test_a_foreign_key_is_refused_and_keys_rotate() -> None:
    old = click_token(OTHER, "msg-1", "https://example.com/")
    with pytest.raises(TokenError):
        read_click(KEYS, old)
    rotated = KeyRing(["first-secret-0123456789", "someone-elses-secret-9876"])
    assert read_click(rotated, old) == ("msg-1", "https://example.com/")  # verify with any
    fresh = click_token(rotated, "msg-1", "https://example.com/")
    assert read_click(KEYS, fresh) == ("msg-1", "https://example.com/")  # sign with the first
    with pytest.raises(TokenError):
        read_click(OTHER, fresh)


def test_verification_is_constant_time_over_every_key(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append(1)
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    ring = KeyRing(["first-secret-0123456789", "someone-elses-secret-9876", "a-third-key-000000"])
    ring.verify(ring.sign("open", {"m": "x"}), "open")
    assert len(calls) == 3  # every key is compared, even after a match


def test_click_tokens_only_carry_web_urls() -> None:
    for url in ("javascript:alert(1)", "mailto:a@example.com", "//evil.example", "/relative"):
        token = KEYS.sign("click", {"m": "msg-1", "u": url})
        with pytest.raises(TokenError):
            read_click(KEYS, token)
    bad_id = KEYS.sign("click", {"m": "a.>", "u": "https://example.com/"})
    with pytest.raises(TokenError):
        read_click(KEYS, bad_id)


def test_unsubscribe_token() -> None:
    claims = read_unsubscribe(KEYS, unsubscribe_token(KEYS, "msg-1", "ada@example.org", "news"))
    assert (claims.message_id, claims.recipient, claims.scope) == (
        "msg-1",
        "ada@example.org",
        "news",
    )


def test_expiry() -> None:
    token = KEYS.sign("open", {"m": "x"}, expires_at=NOW)
    assert KEYS.verify(token, "open", now=NOW - timedelta(seconds=1)).expires_at == NOW
    with pytest.raises(TokenExpired) as expired:
        KEYS.verify(token, "open", now=NOW)
    assert expired.value.expires_at == NOW
    with pytest.raises(TokenError):  # expired or not, a foreign token is just invalid
        OTHER.verify(token, "open", now=NOW + timedelta(days=1))


def test_action_tokens() -> None:
    url = action_url(
        KEYS, "https://app.example.com/reset?lang=en#top", "reset", "user-42", expires_at=NOW
    )
    parts = urlsplit(url)
    assert (parts.netloc, parts.path, parts.fragment) == ("app.example.com", "/reset", "top")
    query = parse_qs(parts.query)
    assert query["lang"] == ["en"]
    token = query["token"][0]
    claims = verify_action_token(KEYS, token, "reset", now=NOW - timedelta(hours=1))
    assert (claims.action, claims.subject, claims.expires_at) == ("reset", "user-42", NOW)
    with pytest.raises(TokenExpired):
        verify_action_token(KEYS, token, "reset", now=NOW)
    with pytest.raises(TokenError):
        verify_action_token(KEYS, token, "activate", now=NOW - timedelta(hours=1))
    with pytest.raises(TokenError):
        verify_action_token(OTHER, token, "reset", now=NOW - timedelta(hours=1))
    with pytest.raises(TokenError):  # a click token is no action token
        verify_action_token(KEYS, click_token(KEYS, "m", "https://example.com/"), "reset")
    with pytest.raises(ValueError):
        action_url(KEYS, "javascript:alert(1)", "reset", "user-42", expires_at=NOW)


def test_keys_must_be_long_enough() -> None:
    with pytest.raises(ValueError):
        KeyRing(["short"])
    with pytest.raises(ValueError):
        KeyRing([])
    assert "secret" not in repr(KEYS)


def test_key_file_is_made_once_private_and_kept(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path / "data")
    ring = load_key_ring(settings)
    path = tmp_path / "data" / KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    token = open_token(ring, "msg-1")
    assert read_open(load_key_ring(settings), token) == "msg-1"  # a restart keeps links working
    assert list(path.parent.iterdir()) == [path]  # no temporary file left behind


def test_configured_keys(tmp_path: Path) -> None:
    settings = load_settings(
        data_dir=tmp_path, token_keys="new-key-0123456789abc, old-key-0123456789abc"
    )
    ring = load_key_ring(settings)
    assert not (tmp_path / KEY_FILE).exists()
    old = open_token(KeyRing(["old-key-0123456789abc"]), "m")
    assert read_open(ring, old) == "m"
    assert read_open(KeyRing(["new-key-0123456789abc"]), open_token(ring, "m")) == "m"
    assert "new-key" not in repr(settings)
    with pytest.raises(ConfigError, match="JETPOST_TOKEN_KEYS"):
        load_settings(token_keys="too-short")

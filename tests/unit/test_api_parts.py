"""The API's pure parts: keys and scopes, cursors, the list query, problem bodies,
template descriptions, the AsyncAPI document."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from litestar.exceptions import ValidationException

from services.api import cursor
from services.api.asyncapi import asyncapi_document
from services.api.keys import ApiKey, hash_key, new_secret, parse_scopes
from services.api.messages import list_query
from services.api.problems import MEDIA_TYPE, Problem, on_validation
from services.api.runtime import KeyCache
from services.api.schemas import Message
from services.api.templates_info import describe_catalog
from services.renderer.catalog import TemplateCatalog
from shared.events import Accepted, Envelope
from shared.fold import fold
from shared.mailbox import Mailbox
from shared.nats_setup import load_definitions
from shared.paths import TEMPLATES_DIR
from shared.settings import load_settings


def test_keys_are_random_and_stored_only_as_hashes() -> None:
    a, b = new_secret(), new_secret()
    assert a != b and a.startswith("jp_") and len(a) == 46
    assert hash_key(a) == hash_key(a) != hash_key(b) and a not in hash_key(a)
    assert len(hash_key(a)) == 64


def test_scopes() -> None:
    assert parse_scopes("send, read,send") == ("read", "send")
    for bad in ("", "root", "send,root"):
        with pytest.raises(ValueError, match="scopes are"):
            parse_scopes(bad)
    reader = ApiKey("k", "", ("read",))
    assert reader.allows("read") and not reader.allows("send") and not reader.allows("admin")
    admin = ApiKey("k", "", ("admin",))
    assert all(admin.allows(s) for s in ("read", "send", "admin"))


def test_key_cache_expires_and_can_be_off() -> None:
    cache = KeyCache(ttl=60)
    key = ApiKey("k", "", ("read",))
    cache.put("h", key)
    assert cache.get("h") == key and cache.get("other") is None
    off = KeyCache(ttl=0)
    off.put("h", key)
    assert off.get("h") is None


def test_cursor_round_trip_and_garbage() -> None:
    at = datetime(2024, 5, 1, 12, 30, 0, 123456, tzinfo=UTC)
    assert cursor.decode(cursor.encode(at, "id-1"), (datetime, str)) == (at, "id-1")
    for bad in ("", "!!!", cursor.encode("x"), cursor.encode(1, 2), cursor.encode("no", "x")):
        with pytest.raises(Problem) as caught:
            cursor.decode(bad, (datetime, str))
        assert caught.value.status_code == 400


def test_list_query_composes_values_as_literals() -> None:
    since = datetime(2024, 1, 1, tzinfo=UTC)
    filters = {"status": "delivered", "to": "@Example.org", "tag": "o'brien", "since": since}
    text = list_query(filters, (since, "x'); DROP TABLE messages; --"), 5).as_string(None)
    assert "status = 'delivered'" in text
    assert "rcpt_domains @> ARRAY['example.org']" in text
    assert "ARRAY['o''brien']" in text
    assert "'x''); DROP TABLE messages; --'" in text
    assert text.endswith("ORDER BY created_at DESC, id DESC LIMIT 6")
    exact = list_query({"to": "Ann <Ann@Example.COM>"}, None, 1).as_string(None)
    assert "to_addrs @> ARRAY['Ann@example.com']" in exact
    with pytest.raises(Problem):
        list_query({"to": "@"}, None, 1)


def test_validation_errors_become_a_readable_problem() -> None:
    exc = ValidationException(
        detail="Validation failed for POST /v1/messages",
        extra=[{"message": "Value error, subject contains a line break", "key": "subject"},
               {"message": "Extra inputs are not permitted", "key": "colour"}],
    )  # fmt: skip
    response = on_validation(None, exc)  # type: ignore[arg-type]
    assert response.status_code == 400 and response.media_type == MEDIA_TYPE
    body = response.content
    assert body["detail"] == (
        "subject: subject contains a line break; colour: Extra inputs are not permitted"
    )
    assert body["type"].startswith("urn:jetpost:problem:") and body["title"] == "Bad Request"


def test_template_description_lists_parts_and_variables() -> None:
    catalog = TemplateCatalog.load(TEMPLATES_DIR)
    info = describe_catalog(catalog, TEMPLATES_DIR)
    assert set(info) == set(catalog.names())
    welcome = info["welcome"]
    assert welcome.version == catalog.get("welcome").version
    assert "subject" in welcome.parts and "name" in welcome.variables


def test_message_from_a_fold() -> None:
    at = datetime(2024, 1, 1, tzinfo=UTC)
    accepted = Accepted(
        event_id="e", message_id="m1", occurred_at=at, subject="Hi", text="t",
        envelope=Envelope(sender=Mailbox(email="a@example.com"),
                          to=(Mailbox(email="b@example.com", name="B"),)),
    )  # fmt: skip
    message = Message.from_state(fold([accepted]), at)
    assert (message.id, message.status, message.to, message.subject) == (
        "m1", "accepted", ["b@example.com"], "Hi"
    )  # fmt: skip
    assert message.created_at == at and message.as_of == at


def test_asyncapi_document_describes_commands_and_services() -> None:
    settings = load_settings(nats_url="nats://127.0.0.1:4222")
    catalog = TemplateCatalog.load(settings.template_dir)
    document = asyncapi_document(settings, load_definitions(settings), catalog, "1.0")
    assert document["asyncapi"].startswith("3.")
    addresses = {c["address"] for c in document["channels"].values()}
    assert {"mail.cmd.send", "mail.cmd.send_batch", "mail.cmd.resend", "mail.cmd.suppress",
            "mail.cmd.unsuppress", "mail.cmd.>", "mail.evt.*.accepted",
            "mail.evt.*.rendered"} <= addresses  # fmt: skip
    assert "SendCommand" in json.dumps(document["components"]["schemas"])

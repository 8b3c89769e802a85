"""Pure parts of the outgoing webhooks: address policy, URL shape, the endpoint fold
(rotation grace), the retry schedule, bodies, and delivery health."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks import Webhook

from projections.webhook_endpoints import from_row, to_row
from services.webhooks.catalog import WEBHOOK_TYPES, Mail, body, payload_models
from services.webhooks.endpoints import fold_all
from services.webhooks.recorder import Row, health
from services.webhooks.schedule import disable_due, next_delay
from services.webhooks.secrets import SealError, SecretBox, Signer, new_secret
from services.webhooks.ssrf import Refused, check_address, check_url, safe_addresses
from shared.events import (
    Delivered,
    WebhookEndpointCreated,
    WebhookEndpointDeleted,
    WebhookEndpointDisabled,
    WebhookEndpointUpdated,
    WebhookSecretRotated,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize("address", ["169.254.169.254", "fe80::1", "0.0.0.0", "224.0.0.1",
                                     "::ffff:169.254.169.254", "fd00:ec2::254"])  # fmt: skip
def test_link_local_and_metadata_are_refused_even_when_private_is_allowed(address: str) -> None:
    with pytest.raises(Refused):
        check_address(ipaddress.ip_address(address), allow_private=True)


PRIVATE = ["127.0.0.1", "10.0.0.1", "192.168.1.1", "172.16.0.1", "100.64.0.1", "::1", "fc00::1",
           "::ffff:127.0.0.1"]  # fmt: skip


@pytest.mark.parametrize("address", PRIVATE)
def test_private_addresses_only_with_the_flag(address: str) -> None:
    with pytest.raises(Refused):
        check_address(ipaddress.ip_address(address), allow_private=False)
    check_address(ipaddress.ip_address(address), allow_private=True)


def test_url_shape() -> None:
    assert check_url("https://hooks.example.com/x?y=1", False) == ("hooks.example.com", 443)
    for bad in ["http://hooks.example.com", "ftp://x.test", "https://u:p@x.test", "https://",
                "https://x.test/a b", "https://x.test/#frag", "https://x.test:99999/"]:  # fmt: skip
        with pytest.raises(Refused):
            check_url(bad, False)
    assert check_url("http://127.0.0.1:8080/h", True) == ("127.0.0.1", 8080)


async def test_a_name_is_refused_when_any_of_its_addresses_is() -> None:
    async def rebinding(host: str, port: int) -> list[str]:
        return ["93.184.216.34", "127.0.0.1"]

    with pytest.raises(Refused):
        await safe_addresses("x.test", 443, False, rebinding)
    assert await safe_addresses("x.test", 443, True, rebinding) == ["93.184.216.34", "127.0.0.1"]


def _created(**extra: object) -> WebhookEndpointCreated:
    fields: dict[str, object] = {
        "event_id": "e1",
        "message_id": "whe_1",
        "occurred_at": T0,
        "url": "https://x.test",
        "events": WEBHOOK_TYPES,
        "secret": "s1",
    }
    return WebhookEndpointCreated.model_validate(fields | extra)


def test_fold_rotation_keeps_the_old_secret_for_the_grace_only() -> None:
    rotated = WebhookSecretRotated(event_id="e2", message_id="whe_1", secret="s2",
                                   occurred_at=T0 + timedelta(hours=1),
                                   previous_valid_until=T0 + timedelta(hours=25))  # fmt: skip
    [endpoint] = fold_all([(10, _created()), (11, rotated)]).values()
    assert endpoint.start_seq == 11
    assert endpoint.signing_secrets(T0 + timedelta(hours=2)) == ("s2", "s1")
    assert endpoint.signing_secrets(T0 + timedelta(hours=26)) == ("s2",)
    again = rotated.model_copy(
        update={"secret": "s3", "occurred_at": T0 + timedelta(hours=30),
                "previous_valid_until": T0 + timedelta(hours=54)}
    )  # fmt: skip
    [later] = fold_all([(12, again)], {"whe_1": endpoint}).values()
    assert [s.sealed for s in later.secrets] == ["s3", "s2"]  # s1 had expired


def test_fold_update_disable_delete_and_stale_commands() -> None:
    update = WebhookEndpointUpdated(event_id="e2", message_id="whe_1", url="https://y.test",
                                    command_seq=5)  # fmt: skip
    stale = WebhookEndpointUpdated(event_id="e3", message_id="whe_1", url="https://old.test",
                                   command_seq=4)  # fmt: skip
    disabled = WebhookEndpointDisabled(event_id="e4", message_id="whe_1", reason="failing",
                                       failing_since=T0)  # fmt: skip
    state = fold_all([(1, _created(command_seq=1)), (2, update), (3, stale), (4, disabled)])
    assert state["whe_1"].url == "https://y.test"
    assert not state["whe_1"].enabled and state["whe_1"].disabled_reason == "failing"
    enable = WebhookEndpointUpdated(event_id="e5", message_id="whe_1", enabled=True, command_seq=6)
    assert fold_all([(5, enable)], state)["whe_1"].enabled
    assert fold_all([(6, WebhookEndpointDeleted(event_id="e6", message_id="whe_1"))], state) == {}
    assert from_row(dict(zip(
        ("id", "url", "events", "description", "enabled", "disabled_reason", "secrets",
         "created_at", "updated_at", "start_seq", "command_seq"),
        [*to_row(state["whe_1"])[:6], [{"sealed": "s1", "valid_until": None}],
         *to_row(state["whe_1"])[7:]], strict=True))) == state["whe_1"]  # fmt: skip


def test_schedule_and_disabling() -> None:
    delays = (5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0)
    assert [next_delay(n, delays) for n in range(1, 9)] == [*delays, None]
    assert disable_due(T0, T0 + timedelta(days=5), 5 * 86400)
    assert not disable_due(T0, T0 + timedelta(days=4), 5 * 86400)
    assert not disable_due(None, T0, 1)


def _row(endpoint: str, outcome: str, minute: int) -> Row:
    return Row(endpoint, "w", "message.delivered", "m", 1, 1, outcome, None, None, 1.0, "",
               None, T0 + timedelta(minutes=minute))  # fmt: skip


def test_health_per_batch() -> None:
    rows = [_row("a", "retrying", 1), _row("a", "delivered", 2), _row("a", "retrying", 3),
            _row("b", "failed", 4), _row("b", "retrying", 5)]  # fmt: skip
    assert health(rows) == {
        "a": (T0 + timedelta(minutes=2), T0 + timedelta(minutes=3)),
        "b": (None, T0 + timedelta(minutes=4)),
    }


def test_body_and_signatures_verify_with_the_package() -> None:
    event = Delivered(event_id="ev-1", message_id="m1", attempt=1, provider="smtp",
                      smtp_code=250, occurred_at=T0)  # fmt: skip
    content = body(event, Mail(to=("a@x.test",), tags=("t",), template="welcome"))
    old, new = new_secret(), new_secret()
    now = datetime.now(UTC)
    headers = Signer([new, old]).headers("ev-1", now, content)
    assert headers["webhook-id"] == "ev-1" and len(headers["webhook-signature"].split()) == 2
    for secret in (old, new):
        data = Webhook(secret).verify(content, headers)
        assert data["type"] == "message.delivered"
        assert data["data"]["to"] == ["a@x.test"] and data["data"]["smtp_code"] == 250
    models = payload_models()
    assert set(models) == set(WEBHOOK_TYPES)
    schema = models["message.bounced"].model_json_schema()
    assert {"message_id", "to", "tags", "template", "kind", "smtp_code"} <= set(
        schema["$defs"]["BouncedWebhookData"]["properties"]
    )
    assert "html" not in str(models["message.accepted"].model_json_schema())


def test_secrets_are_sealed() -> None:
    box, secret = SecretBox(["a-key-of-sixteen-chars"]), new_secret()
    sealed = box.seal(secret)
    assert secret not in sealed and box.open(sealed) == secret
    rotated = SecretBox(["another-key-of-16+", "a-key-of-sixteen-chars"])
    assert rotated.open(sealed) == secret
    with pytest.raises(SealError):
        SecretBox(["a-different-key-16+"]).open(sealed)

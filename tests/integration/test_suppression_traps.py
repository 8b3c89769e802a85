"""Suppressions as a new user meets them through the API: `"scope": "global"` is the
global list (not a list named "global"); a message held back by a suppression keeps
its recipients, so a search by address explains it; lifting a suppression that does
not exist is a 404."""

from __future__ import annotations

from typing import Any

from tests.conftest import Projector
from tests.integration.test_api_support import (  # noqa: F401
    Api,
    api_fixture,
    assert_problem,
    eventually,
)


async def test_global_scope_kept_recipients_and_404(api: Api, projector: Projector) -> None:
    sender, reader, admin = await api.as_("send"), await api.as_("read"), await api.as_("admin")
    added = await api.client.post(
        "/v1/suppressions", headers=sender, json={"address": "Gone@Example.com", "scope": "global"}
    )
    assert added.status_code == 202, added.text
    assert added.json() == {"address": "gone@example.com", "scope": ""}

    async def listed(**params: Any) -> Any:
        response = await api.client.get("/v1/suppressions", params=params, headers=reader)
        assert response.status_code == 200, response.text
        return response.json()["items"]

    entries = await eventually(lambda: listed(address="gone@example.com"), "listed")
    assert [(e["address"], e["scope"]) for e in entries] == [("gone@example.com", "")]
    assert [e["address"] for e in await listed(scope="global")] == ["gone@example.com"]

    # intake enforces it once the KV set has it: a send may still slip through before
    async def held_back() -> Any:
        response = await api.client.post(
            "/v1/messages",
            headers=sender,
            json={
                "to": ["gone@example.com"],
                "cc": ["boss@example.com"],
                "subject": "s",
                "text": "t",
            },
        )
        mid = response.json()["id"]

        async def status() -> Any:
            one = (await api.client.get(f"/v1/messages/{mid}", headers=reader)).json()
            return one if one.get("status") in ("suppressed", "delivered") else None

        message = await eventually(status, "the message settled")
        return message if message["status"] == "suppressed" else None

    message = await eventually(held_back, "a send to gone@example.com suppressed", timeout=40)
    assert message["to"] == ["gone@example.com"] and message["cc"] == ["boss@example.com"]
    search = (await api.client.get("/v1/messages", params={"to": "gone@example.com"},
                                   headers=reader)).json()["items"]  # fmt: skip
    assert message["id"] in [m["id"] for m in search]

    missing = await api.client.delete("/v1/suppressions/nobody@example.com", headers=admin)
    assert_problem(missing, 404)
    other_scope = await api.client.delete("/v1/suppressions/gone@example.com",
                                          params={"scope": "news"}, headers=admin)  # fmt: skip
    assert_problem(other_scope, 404)
    lifted = await api.client.delete("/v1/suppressions/gone@example.com",
                                     params={"scope": "global"}, headers=admin)  # fmt: skip
    assert lifted.status_code == 202, lifted.text

"""The API's read side, over read models kept by the real projection runner (nothing
is written into them by hand): filters, keyset pages, one message and its timeline,
resend, stats and suppressions."""

from __future__ import annotations

from typing import Any

from nats.js import JetStreamContext

from tests.conftest import Projector
from tests.integration.test_api_support import (  # noqa: F401
    Api,
    api_fixture,
    assert_problem,
    eventually,
)
from tests.integration.test_pipeline import send as publish

DONE = {"delivered", "render_failed", "rejected", "bounced", "failed", "suppressed"}


def welcome(to: str, name: str = "Ann", **extra: Any) -> dict[str, Any]:
    return {"to": to, "template": "welcome", "vars": {"name": name}, **extra}


async def send(api: Api, headers: dict[str, str], command: dict[str, Any]) -> str:
    response = await api.client.post("/v1/messages", json=command, headers=headers)
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


async def settled(api: Api, headers: dict[str, str], count: int) -> list[dict[str, Any]]:
    """Every message, once `count` of them are in the read model, all finished."""

    async def check() -> list[dict[str, Any]] | None:
        response = await api.client.get("/v1/messages", params={"limit": 500}, headers=headers)
        items: list[dict[str, Any]] = response.json()["items"]
        done = len(items) == count and all(i["status"] in DONE for i in items)
        return items if done else None

    result: list[dict[str, Any]] = await eventually(check, f"{count} settled messages")
    return result


async def test_list_filters(api: Api, projector: Projector, js: JetStreamContext) -> None:
    sender, reader = await api.as_("send"), await api.as_("read")
    ann = await send(api, sender, welcome("Ann <ann@example.com>", tags=["signup"]))
    bob = await send(
        api, sender, {"to": "bob@example.org", "subject": "News", "text": "hi", "tags": ["news"]}
    )
    cid = await send(api, sender, welcome("cid@example.org", "Cid", tags=["signup", "vip"]))
    no_vars = {"to": "dan@example.com", "template": "welcome"}
    refused = await api.client.post("/v1/messages", json=no_vars, headers=sender)
    assert_problem(refused, 422)  # the API checks first; over NATS it is recorded as failed
    dan = "dan-no-vars"
    await publish(js, {**no_vars, "message_id": dan})
    items = await settled(api, reader, 4)
    by_id = {i["id"]: i for i in items}
    assert by_id[ann]["to"] == ["ann@example.com"] and "Ann" in by_id[ann]["subject"]
    assert by_id[bob]["subject"] == "News" and by_id[bob]["template"] is None
    assert by_id[dan]["status"] == "render_failed" and "name" in by_id[dan]["last_error"]
    for item in items:
        assert (
            item["created_at"] and item["updated_at"] and item["created_at"] <= item["updated_at"]
        )

    async def ids(**params: Any) -> set[str]:
        response = await api.client.get("/v1/messages", params=params, headers=reader)
        assert response.status_code == 200, response.text
        return {i["id"] for i in response.json()["items"]}

    assert await ids(status="delivered") == {ann, bob, cid}
    assert await ids(status="render_failed") == {dan}
    assert await ids(to="ann@example.com") == {ann}
    assert await ids(to="Ann <ann@example.com>") == {ann}
    assert await ids(to="@example.org") == {bob, cid}
    assert await ids(to="@EXAMPLE.ORG") == {bob, cid}
    assert await ids(template="welcome") == {ann, cid, dan}
    assert await ids(tag="signup") == {ann, cid}
    assert await ids(tag="vip", template="welcome") == {cid}
    newest_first = sorted(items, key=lambda i: (i["created_at"], i["id"]), reverse=True)
    second = newest_first[1]["created_at"]
    assert await ids(since=second) == {i["id"] for i in newest_first[:2]}
    assert await ids(until=second) == {i["id"] for i in newest_first[2:]}
    assert await ids(since="2999-01-01T00:00:00Z") == set()

    for params in (
        {"to": "not an address"},
        {"to": "@"},
        {"limit": 0},
        {"limit": 501},
        {"cursor": "garbage"},
        {"since": "last tuesday"},
    ):
        response = await api.client.get("/v1/messages", params=params, headers=reader)
        assert_problem(response, 400)


async def test_keyset_pages_have_no_gaps_and_no_duplicates(api: Api, projector: Projector) -> None:
    sender, reader = await api.as_("send"), await api.as_("read")
    batch = {
        "template": "welcome",
        "recipients": [{"to": f"r{n}@example.com", "vars": {"name": f"R{n}"}} for n in range(23)],
    }
    response = await api.client.post("/v1/messages/batch", json=batch, headers=sender)
    assert response.status_code == 202, response.text
    sent = set(response.json()["ids"])
    everything = await settled(api, reader, 23)
    assert {i["id"] for i in everything} == sent

    seen: list[dict[str, Any]] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 5, **({"cursor": cursor} if cursor else {})}
        page = (await api.client.get("/v1/messages", params=params, headers=reader)).json()
        seen += page["items"]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert pages < 10, "pagination does not end"
    assert pages == 5 and len(seen) == 23
    assert [i["id"] for i in seen] == [i["id"] for i in everything]  # same order as one page
    keys = [(i["created_at"], i["id"]) for i in seen]
    assert keys == sorted(keys, reverse=True) and len(set(keys)) == 23


async def test_one_message_its_timeline_and_the_log_agree(
    api: Api, projector: Projector, js: JetStreamContext
) -> None:
    sender, reader = await api.as_("send"), await api.as_("read")
    message_id = await send(api, sender, welcome("ann@example.com", tags=["t1"]))
    await settled(api, reader, 1)
    row = (await api.client.get(f"/v1/messages/{message_id}", headers=reader)).json()
    assert row["status"] == "delivered" and row["tags"] == ["t1"] and row["attempts"] == 1
    folded = await api.client.get(
        f"/v1/messages/{message_id}", params={"as_of": "2999-01-01T00:00:00Z"}, headers=reader
    )
    from_log = folded.json()
    assert from_log.pop("as_of") and row.pop("as_of") is None
    assert from_log == row  # the read model and the fold of the log say the same

    timeline = await api.client.get(f"/v1/messages/{message_id}/events", headers=reader)
    items = timeline.json()["items"]
    assert [e["type"] for e in items] == ["accepted", "rendered", "attempted", "delivered"]
    assert [e["seq"] for e in items] == sorted(e["seq"] for e in items)
    assert items[0]["data"]["message_id"] == message_id
    assert_problem(await api.client.get("/v1/messages/nope", headers=reader), 404)
    assert_problem(await api.client.get("/v1/messages/nope/events", headers=reader), 404)


async def test_resend(api: Api, projector: Projector) -> None:
    sender, reader = await api.as_("send"), await api.as_("read")
    original = await send(api, sender, welcome("ann@example.com"))
    await settled(api, reader, 1)
    plain = await api.client.post(f"/v1/messages/{original}/resend", headers=sender)
    rerendered = await api.client.post(
        f"/v1/messages/{original}/resend", json={"rerender": True}, headers=sender
    )
    assert plain.status_code == rerendered.status_code == 202, plain.text
    copies = {plain.json()["id"], rerendered.json()["id"]}
    items = await settled(api, reader, 3)
    by_id = {i["id"]: i for i in items}
    assert all(by_id[c]["status"] == "delivered" for c in copies)
    assert set(by_id[original]["resent_as"]) == copies
    bad = await api.client.post(
        f"/v1/messages/{original}/resend", json={"rerender": "x y"}, headers=sender
    )
    assert_problem(bad, 400)
    assert_problem(await api.client.post(f"/v1/messages/{original}/resend", headers=reader), 403)


async def test_stats(api: Api, projector: Projector, js: JetStreamContext) -> None:
    sender, reader = await api.as_("send"), await api.as_("read")
    for name in ("Ann", "Bob"):
        await send(api, sender, welcome(f"{name.lower()}@example.com", name))
    # no vars: over NATS (the API would refuse it), it is recorded as render_failed
    await publish(js, {"to": "cid@example.com", "template": "welcome", "message_id": "cid"})
    items = await settled(api, reader, 3)
    stats = (await api.client.get("/v1/stats", headers=reader)).json()
    assert stats["by_status"] == {"delivered": 2, "render_failed": 1} and stats["total"] == 3
    day = items[0]["created_at"][:10]
    daily = {(r["day"], r["template"], r["outcome"]): r["count"] for r in stats["daily"]}
    assert daily[(day, "welcome", "delivered")] == 2
    assert daily[(day, "welcome", "render_failed")] == 1
    assert daily[(day, "welcome", "accepted")] == 3
    window = {"since": f"{day}T00:00:00Z", "until": "2999-01-01T00:00:00Z"}
    assert (await api.client.get("/v1/stats", params=window, headers=reader)).json()["total"] == 3
    later = (
        await api.client.get("/v1/stats", params={"since": "2999-01-01T00:00:00Z"}, headers=reader)
    ).json()
    assert later["total"] == 0 and later["by_status"] == {} and later["daily"] == []
    assert_problem(await api.client.get("/v1/stats", params={"until": "soon"}, headers=reader), 400)


async def test_suppressions(api: Api, projector: Projector) -> None:
    sender, reader, admin = await api.as_("send"), await api.as_("read"), await api.as_("admin")
    added = await api.client.post(
        "/v1/suppressions",
        headers=sender,
        json={"address": "Bob@Example.com", "reason": "asked us"},
    )
    assert added.status_code == 202, added.text
    assert added.json() == {"address": "bob@example.com", "scope": ""}
    news = await api.client.post(
        "/v1/suppressions", headers=sender, json={"address": "carol@example.com", "scope": "news"}
    )
    assert news.status_code == 202

    async def listed(**params: Any) -> Any:
        response = await api.client.get("/v1/suppressions", params=params, headers=reader)
        assert response.status_code == 200, response.text
        return response.json()

    async def both() -> Any:
        return len((await listed())["items"]) == 2

    await eventually(both, "two suppressions in the read model")
    bob = (await listed(address="BOB@example.com"))["items"]
    assert [(s["address"], s["scope"], s["reason"]) for s in bob] == [
        ("bob@example.com", "", "asked us")
    ]
    assert bob[0]["event_id"] and bob[0]["created_at"]
    first = await listed(limit=1)
    second = await listed(limit=1, cursor=first["next_cursor"])
    assert [s["address"] for s in first["items"] + second["items"]] == [
        "bob@example.com",
        "carol@example.com",
    ] and second["next_cursor"] is None
    assert (await listed(scope="news"))["items"][0]["address"] == "carol@example.com"

    lift = "/v1/suppressions/carol@example.com"
    assert_problem(await api.client.delete(lift, params={"scope": "news"}, headers=sender), 403)
    removed = await api.client.delete(lift, params={"scope": "news"}, headers=admin)
    assert removed.status_code == 202, removed.text

    async def only_bob() -> Any:
        return [s["address"] for s in (await listed())["items"]] == ["bob@example.com"]

    await eventually(only_bob, "carol's suppression lifted")
    bad = await api.client.post("/v1/suppressions", json={"address": "nope"}, headers=sender)
    assert_problem(bad, 400)
    assert_problem(await api.client.delete("/v1/suppressions/nope", headers=admin), 400)
    assert_problem(
        await api.client.get("/v1/suppressions", params={"cursor": "x"}, headers=reader), 400
    )

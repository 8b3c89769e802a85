"""Validation messages a newcomer meets (issue 12, item 7) and the send pre-check
(item 4): each says what is wrong, in the caller's terms."""

from __future__ import annotations

from tests.integration.test_api_support import Api, api_fixture, assert_problem  # noqa: F401


async def test_bad_input_is_explained(api: Api) -> None:
    sender, reader = await api.as_("send"), await api.as_("read")
    headers = {**sender, "content-type": "application/json"}
    bad_json = await api.client.post("/v1/messages", content=b'{"to": ', headers=headers)
    detail = assert_problem(bad_json, 400)["detail"]
    assert detail == "the body is not valid JSON: it ends before the JSON does", detail

    body = {"to": "not an address", "subject": "s", "text": "t"}
    bad_address = await api.client.post("/v1/messages", json=body, headers=sender)
    assert "'not an address'" in assert_problem(bad_address, (400, 422))["detail"]

    bad_limit = assert_problem(await api.client.get("/v1/messages?limit=0", headers=reader), 400)
    assert all(e.get("source") in (None, "query") for e in bad_limit["errors"]), bad_limit

    bogus = await api.client.get("/v1/messages?status=bogus", headers=reader)
    assert "status" in assert_problem(bogus, 400)["detail"]

    resend = await api.client.post("/v1/messages/abc/resend", json={"rerender": "yes"},
                                   headers=sender)  # fmt: skip
    assert "rerender" in assert_problem(resend, 400)["detail"]

    day = await api.client.get("/v1/stats?since=2026-01-01&until=2026-01-02", headers=reader)
    assert day.status_code == 200, day.text
    listed = await api.client.get("/v1/messages?since=2026-01-01", headers=reader)
    assert listed.status_code == 200, listed.text

    metrics = await api.client.get("/metrics")
    assert metrics.headers["content-type"].count("charset") == 1, metrics.headers

    templates = (await api.client.get("/v1/templates", headers=reader)).json()["items"]
    assert all("signed_url" not in t["variables"] for t in templates), templates


async def test_send_is_checked_before_it_is_accepted(api: Api) -> None:
    sender = await api.as_("send")
    unknown = {"to": "a@example.com", "template": "nope"}
    missing = {"to": "a@example.com", "template": "welcome", "vars": {}}
    for body, expected in ((unknown, "unknown template 'nope'"),
                           (missing, "missing variable 'name'")):  # fmt: skip
        response = await api.client.post("/v1/messages", json=body, headers=sender)
        assert expected in assert_problem(response, 422)["detail"]
    batch = {"messages": [{"to": "b@example.com", "template": "welcome", "vars": {"name": "B"}},
                          missing]}  # fmt: skip
    refused = assert_problem(await api.client.post("/v1/messages/batch", json=batch,
                                                   headers=sender), 422)  # fmt: skip
    assert refused["errors"] == [{"index": 1, "detail": refused["errors"][0]["detail"]}]
    assert "missing variable 'name'" in refused["errors"][0]["detail"]
    good = {"to": "a@example.com", "template": "welcome", "vars": {"name": "A"}}
    assert (await api.client.post("/v1/messages", json=good, headers=sender)).status_code == 202

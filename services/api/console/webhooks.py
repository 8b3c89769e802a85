"""Webhook endpoints and their latest deliveries (admin), read through the API's own
handlers (services.api.webhook_endpoints), so the page shows what the API answers."""

from __future__ import annotations

from typing import Any

from litestar import get

from services.api import webhook_endpoints as api
from services.api.console.pages import need, page
from services.api.console.session import Rt, Session
from services.api.runtime import Runtime

DELIVERIES = 20


async def _deliveries(rt: Runtime, endpoint_id: str) -> Any:
    return await api.list_deliveries.fn(
        rt=rt, endpoint_id=endpoint_id, outcome=None, type_=None, message_id=None,
        webhook_id=None, since=None, until=None, limit=DELIVERIES, cursor_=None,
    )  # fmt: skip


@get("/webhooks")
async def webhook_list(rt: Rt, session: Session) -> Any:
    need(session, "admin")
    endpoints = (await api.list_endpoints.fn(rt=rt, limit=100, cursor_=None)).items
    deliveries = {e.id: (await _deliveries(rt, e.id)).items for e in endpoints}
    return page("webhooks.html", session, endpoints=endpoints, deliveries=deliveries)


ROUTES = [webhook_list]

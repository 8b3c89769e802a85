"""`http+json://host/path` (and `https+json://`): POST each mail as JSON to a web hook
of your own (httpx, pooled, with timeouts).

The request: `{"mail_from": ..., "rcpt_to": [...], "data": "<the MIME message>"}`
with `Content-Type: application/json`; credentials in the URL become basic auth.
How answers map: 2xx -> delivered; 5xx, a timeout or no connection -> deferred
(and failed over); 401/403/429 -> deferred (and failed over); other 4xx -> bounced.
"""

from __future__ import annotations

import httpx

from services.sender.http_client import http_target, make_client, status_outcome, transport_failure
from services.sender.mailer import Mail
from services.sender.outcome import Outcome


class HttpJsonMailer:
    def __init__(self, url: str, *, timeout: float, pool_size: int, name: str = "http") -> None:
        self.name = name
        self._url, auth = http_target(url)
        self._client = make_client(timeout, pool_size, auth)

    async def start(self) -> None:
        """Nothing to open: httpx connects on the first request."""

    async def send(self, mail: Mail) -> Outcome:
        body = {
            "mail_from": mail.sender,
            "rcpt_to": list(mail.recipients),
            "data": mail.data.decode("utf-8"),
        }
        try:
            response = await self._client.post(self._url, json=body)
        except httpx.HTTPError as exc:
            return transport_failure(exc)
        failed = status_outcome(response)
        if failed is not None:
            return failed
        return Outcome("delivered", None, f"HTTP {response.status_code}: {response.text[:200]}")

    async def close(self) -> None:
        await self._client.aclose()

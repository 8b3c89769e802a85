"""`kumomta+http://host:port` (and `kumomta+https://`): hand mail to KumoMTA through
its HTTP injection API, `POST /api/inject/v1`.

The request carries the finished, signed MIME message as `content` (a string is
taken as RFC 5322 as-is), the envelope sender and the recipients, and
`template_dialect: "Static"` so KumoMTA never expands `{{ }}` found in a mail. Its
answer is `{"success_count", "fail_count", "failed_recipients", "errors"}`.
Credentials in the URL become HTTP basic auth (KumoMTA's http listener auth).

How answers map: 200 with no failed recipient -> delivered (KumoMTA has queued it;
its own later bounces reach jetpost through its webhooks/feedback loop); some
recipients failed -> delivered, those listed under `refused`; all failed -> bounced
with KumoMTA's errors; 5xx, 401/403/429, a timeout or no connection -> deferred (and
failed over); other 4xx (a request it refuses) -> bounced.
"""

from __future__ import annotations

from typing import Any

import httpx

from services.sender.http_client import http_target, make_client, status_outcome, transport_failure
from services.sender.mailer import Mail
from services.sender.outcome import Outcome

INJECT_PATH = "/api/inject/v1"


def inject_request(mail: Mail) -> dict[str, Any]:
    return {
        "envelope_sender": mail.sender,
        "content": mail.data.decode("utf-8"),
        "recipients": [{"email": rcpt} for rcpt in mail.recipients],
        "template_dialect": "Static",
    }


def inject_outcome(mail: Mail, answer: dict[str, Any]) -> Outcome:
    """What KumoMTA's injection answer means for the mail. Pure."""
    errors = "; ".join(str(e) for e in answer.get("errors") or []) or "refused by KumoMTA"
    failed = [str(r) for r in answer.get("failed_recipients") or []]
    success = int(answer.get("success_count") or 0)
    if not failed and not int(answer.get("fail_count") or 0):
        return Outcome("delivered", None, f"queued by KumoMTA ({success} recipients)")
    refused = {rcpt: errors for rcpt in failed}
    if success > 0:
        return Outcome("delivered", None, f"queued by KumoMTA ({success} recipients)", refused)
    return Outcome("bounced", None, f"KumoMTA: {errors}", refused)


class KumoMailer:
    def __init__(self, url: str, *, timeout: float, pool_size: int, name: str = "kumomta") -> None:
        self.name = name
        base, auth = http_target(url)
        self._url = base.rstrip("/") + INJECT_PATH
        self._client = make_client(timeout, pool_size, auth)

    async def start(self) -> None:
        """Nothing to open: httpx connects on the first request."""

    async def send(self, mail: Mail) -> Outcome:
        try:
            response = await self._client.post(self._url, json=inject_request(mail))
        except httpx.HTTPError as exc:
            return transport_failure(exc)
        failed = status_outcome(response)
        if failed is not None:
            return failed
        try:
            answer = response.json()
        except ValueError:
            return Outcome("deferred", None, f"KumoMTA answered no JSON: {response.text[:200]}",
                           connection=True)  # fmt: skip
        if not isinstance(answer, dict):
            return Outcome("deferred", None, "KumoMTA answered an unexpected body", connection=True)
        return inject_outcome(mail, answer)

    async def close(self) -> None:
        await self._client.aclose()

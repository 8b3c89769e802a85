"""Errors as RFC 9457 problem details (`application/problem+json`).

Every error leaves the API through here: problems raised on purpose, Litestar's
own HTTP errors (validation, 404, 405), NATS or Postgres being away (503), and
anything unexpected (500, logged with its traceback). Bad input is always a 4xx.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException, SerializationException, ValidationException

log = logging.getLogger("jetpost.api")

MEDIA_TYPE = "application/problem+json"
TYPE_PREFIX = "urn:jetpost:problem:"


class Problem(HTTPException):
    """An error with a problem type (`urn:jetpost:problem:<kind>`) and a useful detail."""

    def __init__(
        self,
        status: int,
        kind: str,
        detail: str,
        *,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail=detail, status_code=status, headers=headers, extra=extra)
        self.kind = kind


class Unavailable(Exception):
    """A backing service (NATS, Postgres) cannot answer now: 503, try again."""


class TooLarge(Exception):
    """A command larger than NATS accepts in one message (its max_payload)."""


def problem(
    status: int,
    kind: str,
    detail: str,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> Response[dict[str, Any]]:
    body: dict[str, Any] = {
        "type": f"{TYPE_PREFIX}{kind}" if kind else "about:blank",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        **extra,
    }
    return Response(body, status_code=status, media_type=MEDIA_TYPE, headers=headers)


def _message(text: str) -> str:
    return text.removeprefix("Value error, ")


def on_problem(_: Request[Any, Any, Any], exc: Problem) -> Response[dict[str, Any]]:
    extra = exc.extra if isinstance(exc.extra, dict) else {}
    return problem(exc.status_code, exc.kind, exc.detail, exc.headers, **extra)


def on_validation(_: Request[Any, Any, Any], exc: ValidationException) -> Response[dict[str, Any]]:
    errors: list[dict[str, str]] = []
    for item in exc.extra if isinstance(exc.extra, list) else []:
        if isinstance(item, dict):
            entry = {"field": str(item.get("key") or ""),
                     "message": _message(str(item.get("message", "")))}  # fmt: skip
            if item.get("source"):  # an enum (ParamType.QUERY): its value, "query"
                entry["source"] = str(getattr(item["source"], "value", item["source"]))
            errors.append(entry)
    parts = [f"{e['field']}: {e['message']}" if e["field"] else e["message"] for e in errors]
    if errors and errors[0]["field"] == "data" and errors[0].get("source") == "body":
        parts = ["a JSON body is required"]
    return problem(400, "invalid-request", "; ".join(parts) or exc.detail, errors=errors)


def on_http(_: Request[Any, Any, Any], exc: HTTPException) -> Response[dict[str, Any]]:
    if isinstance(exc.__cause__, SerializationException):  # msgspec's words alone puzzle
        why = exc.detail.replace("Input data was truncated", "it ends before the JSON does")
        return problem(400, "invalid-request", f"the body is not valid JSON: {why}")
    status = exc.status_code
    kind = {404: "not-found", 405: "method-not-allowed", 413: "too-large",
            429: "too-many-requests"}.get(status, "")  # fmt: skip
    if status == 400:
        kind = "invalid-request"
    return problem(status, kind, exc.detail, exc.headers)


def on_bad_value(_: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    """A value the database cannot take (a NUL in a filter, a date out of range):
    the request's fault, so a 400, not a 500."""
    return problem(400, "invalid-request", f"a parameter has a value that cannot be used: "
                   f"{type(exc).__name__}")  # fmt: skip


def on_unavailable(_: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    log.warning("service unavailable: %r", exc)
    detail = str(exc) if isinstance(exc, Unavailable) else "the database is unavailable"
    return problem(503, "unavailable", detail, {"Retry-After": "1"})


def on_too_large(_: Request[Any, Any, Any], exc: TooLarge) -> Response[dict[str, Any]]:
    return problem(413, "too-large", str(exc))


def on_internal(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem(500, "internal", "an unexpected error; it has been logged")

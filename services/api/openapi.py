"""Completes the OpenAPI document Litestar generates, so clients see every answer
a route can give: errors as `application/problem+json` (RFC 9457) with their real
statuses (401/403 for keyed routes, 404 where a path names a thing, 413/422 where a
body is read, 429 where a rate limit applies, 503 with Retry-After where NATS or
Postgres is needed), the GIF, text and HTML bodies the public and health routes
really send, and `additionalProperties: false` for the models that refuse unknown
fields. Applied once, to the document object, when the app is built.
"""

from __future__ import annotations

from collections.abc import Iterator

from litestar.openapi.spec import (
    OpenAPI,
    OpenAPIFormat,
    OpenAPIHeader,
    OpenAPIMediaType,
    OpenAPIResponse,
    OpenAPIType,
    Operation,
    Reference,
    Schema,
)
from pydantic import BaseModel

from services.api.problems import MEDIA_TYPE

PROBLEM = Schema(
    type=OpenAPIType.OBJECT,
    description="RFC 9457 problem details",
    required=["type", "title", "status", "detail"],
    properties={
        "type": Schema(type=OpenAPIType.STRING, description="urn:jetpost:problem:<kind>"),
        "title": Schema(type=OpenAPIType.STRING),
        "status": Schema(type=OpenAPIType.INTEGER),
        "detail": Schema(type=OpenAPIType.STRING),
    },
)
RETRY_AFTER: dict[str, OpenAPIHeader | Reference] = {
    "Retry-After": OpenAPIHeader(
        schema=Schema(type=OpenAPIType.INTEGER), description="seconds to wait"
    )
}
ERRORS = {
    400: "malformed request",
    401: "no live API key",
    403: "the key lacks the route's scope",
    404: "not found",
    413: "the body is larger than NATS takes in one message",
    422: "well-formed but refused",
    429: "too many requests; see Retry-After",
    503: "NATS or PostgreSQL unavailable; see Retry-After",
}
# What the public and health routes send besides JSON.
BODIES = {
    ("get", "/t/o/{token}"): (
        "image/gif",
        Schema(type=OpenAPIType.STRING, format=OpenAPIFormat.BINARY),
    ),
    ("get", "/u/{token}"): ("text/html", Schema(type=OpenAPIType.STRING)),
    ("post", "/u/{token}"): ("text/html", Schema(type=OpenAPIType.STRING)),
    ("get", "/metrics"): ("text/plain", Schema(type=OpenAPIType.STRING)),
}


ADDRESSES = Schema(
    one_of=[
        Schema(type=OpenAPIType.STRING, description="'Name <addr>' or 'addr'"),
        Schema(type=OpenAPIType.ARRAY, items=Schema(type=OpenAPIType.STRING)),
    ]
)
# Callers send addresses as strings; the model holds them parsed.
AS_SENT = {
    "SendCommand": {
        "to": ADDRESSES, "cc": ADDRESSES, "bcc": ADDRESSES, "reply_to": ADDRESSES,
        "from": Schema(one_of=[Schema(type=OpenAPIType.STRING), Schema(type=OpenAPIType.NULL)]),
    },
    "BatchRecipient": {"to": ADDRESSES},
}  # fmt: skip


def _operations(doc: OpenAPI) -> Iterator[tuple[str, str, Operation]]:
    for path, item in (doc.paths or {}).items():
        for method in ("get", "put", "post", "delete", "patch"):
            operation = getattr(item, method)
            if operation is not None:
                yield method, path, operation


def _statuses(method: str, path: str, operation: Operation) -> set[int]:
    codes = {400} if operation.parameters or operation.request_body else set()
    if operation.security:
        codes |= {401, 403, 429, 503}
    if "{" in path:
        codes.add(404)
    if operation.request_body is not None:
        codes |= {413, 422}
    if path.startswith(("/t/", "/u/")):
        codes |= {404, 429, 503}
    if path == "/readyz":
        codes.add(503)
    if path.startswith("/v1/webhooks"):
        codes |= {413, 503}
    return codes


def _problem_response(status: int) -> OpenAPIResponse:
    return OpenAPIResponse(
        description=ERRORS.get(status, "error"),
        content={MEDIA_TYPE: OpenAPIMediaType(schema=Reference("#/components/schemas/Problem"))},
        headers=RETRY_AFTER if status in (429, 503) else None,
    )


def _strict_models() -> dict[str, bool]:
    found: dict[str, bool] = {}
    todo: list[type[BaseModel]] = [BaseModel]
    while todo:
        model = todo.pop()
        todo.extend(model.__subclasses__())
        found[model.__name__] = model.model_config.get("extra") == "forbid"
    return found


def complete(doc: OpenAPI) -> OpenAPI:
    if doc.components is not None:
        schemas = doc.components.schemas if doc.components.schemas is not None else {}
        strict = _strict_models()
        for name, schema in schemas.items():
            if isinstance(schema, Schema) and strict.get(name):
                schema.additional_properties = False
            if isinstance(schema, Schema) and schema.properties and name in AS_SENT:
                schema.properties.update(AS_SENT[name])
        schemas["Problem"] = PROBLEM
        doc.components.schemas = schemas
    for method, path, operation in _operations(doc):
        responses = operation.responses if operation.responses is not None else {}
        for code in _statuses(method, path, operation):
            responses.setdefault(str(code), _problem_response(code))
        for status, response in list(responses.items()):
            if status.startswith(("4", "5")) and isinstance(response, OpenAPIResponse):
                responses[status] = _problem_response(int(status))
        if (method, path) in BODIES:
            media, schema = BODIES[(method, path)]
            if isinstance(found := responses.get("200"), OpenAPIResponse):
                found.content = {media: OpenAPIMediaType(schema=schema)}
        if path == "/t/c/{token}":
            responses.pop("200", None)
            responses["302"] = OpenAPIResponse(
                description="redirect to the URL signed at render time",
                headers={"Location": OpenAPIHeader(schema=Schema(type=OpenAPIType.STRING))},
            )
        operation.responses = responses
    return doc

"""The webhook bodies documented: one schema per type, for the OpenAPI 3.1 `webhooks`
section and the AsyncAPI document's components, from services/webhooks/catalog."""

from __future__ import annotations

from typing import Any, cast

from litestar.openapi.spec import (
    OpenAPIMediaType,
    OpenAPIResponse,
    Operation,
    PathItem,
    Reference,
    RequestBody,
    Schema,
)

from services.webhooks.catalog import payload_models

HEADERS = ("Standard Webhooks headers: `webhook-id` (the event's id, the same on every "
           "retry: dedupe on it), `webhook-timestamp` (Unix seconds), `webhook-signature` "
           "(`v1,<base64 HMAC-SHA256 of id.timestamp.body>`, space-separated while a rotated "
           "secret still signs).")  # fmt: skip


def _inline(node: Any, defs: dict[str, Any]) -> Any:
    """The schema with its `$defs` references written out (they are not recursive)."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            return _inline(defs[ref.removeprefix("#/$defs/")], defs)
        return {k: _inline(v, defs) for k, v in node.items() if k != "$defs"}
    if isinstance(node, list):
        return [_inline(v, defs) for v in node]
    return node


def body_schemas() -> dict[str, dict[str, Any]]:
    schemas = {}
    for name, model in payload_models().items():
        raw = model.model_json_schema()
        schemas[name] = _inline(raw, raw.get("$defs", {}))
    return schemas


def openapi_webhooks() -> dict[str, PathItem | Reference]:
    items: dict[str, PathItem | Reference] = {}
    for name, schema in body_schemas().items():
        media = OpenAPIMediaType(schema=cast(Schema, schema))
        items[name] = PathItem(post=Operation(
            summary=name, description=f"{schema.get('description', '')}\n\n{HEADERS}",
            request_body=RequestBody(content={"application/json": media}, required=True),
            responses={"2XX": OpenAPIResponse(description="received; anything else is retried")},
            tags=["webhooks"],
        ))  # fmt: skip
    return items


def add_to_asyncapi(document: dict[str, Any]) -> dict[str, Any]:
    """The webhook bodies as components of the AsyncAPI document (they leave over HTTP,
    but they are the events of the log, as a customer's application receives them)."""
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for name, schema in body_schemas().items():
        schemas[f"Webhook.{name}"] = schema
    return document

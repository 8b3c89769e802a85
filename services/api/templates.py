"""The template catalog over HTTP: what exists (parts, variables) and a preview
rendered exactly as the renderer would, without sending anything."""

from __future__ import annotations

from typing import Any

from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody

from services.api.auth import READ, SECURITY
from services.api.problems import Problem
from services.api.routing import get, post
from services.api.runtime import Runtime
from services.api.schemas import Preview, PreviewRequest, TemplateList, TemplateSummary
from services.renderer.render import render
from shared.events import Accepted, Envelope, RenderFailed
from shared.mailbox import Mailbox, parse_mailbox

TAGS = ["templates"]
PREVIEW_ID = "preview"
PREVIEW_TO = Mailbox(email="preview@example.com")


@get("/v1/templates", summary="The template catalog", guards=READ, security=SECURITY, tags=TAGS)
async def list_templates(rt: NamedDependency[Runtime]) -> TemplateList:
    return TemplateList(items=[
        TemplateSummary(name=t.name, version=t.version, parts=list(t.parts),
                        variables=list(t.variables))
        for t in rt.templates.values()
    ])  # fmt: skip


@post(
    "/v1/templates/{name:str}/preview",
    summary="Render a template",
    status_code=200,
    guards=READ,
    security=SECURITY,
    tags=TAGS,
)
async def preview_template(
    rt: NamedDependency[Runtime], name: FromPath[str], data: JSONBody[PreviewRequest | None] = None
) -> Preview:
    return render_preview(rt, name, data.vars if data else {})


def render_preview(rt: Runtime, name: str, variables: dict[str, Any]) -> Preview:
    """The template rendered as the renderer would; 404 / 422 problems otherwise."""
    if name not in rt.catalog.names():
        raise Problem(404, "not-found", f"no template {name!r}")
    accepted = Accepted(
        event_id=PREVIEW_ID,
        message_id=PREVIEW_ID,
        envelope=Envelope(
            sender=parse_mailbox(rt.settings.sender_from, operator=True), to=(PREVIEW_TO,)
        ),
        template=name,
        vars=variables,
    )
    catalog = rt.preview_catalog or rt.catalog
    result = render(accepted, catalog, mail_domain=rt.settings.mail_domain)
    if isinstance(result, RenderFailed):
        if result.missing_variable:
            raise Problem(422, "missing-variable",
                          f"missing variable {result.missing_variable!r}: {result.reason}",
                          missing_variable=result.missing_variable)  # fmt: skip
        raise Problem(422, "render-failed", result.reason)
    return Preview(template=name, version=result.template_version or "",
                   subject=result.subject, html=result.html, text=result.text)  # fmt: skip


ROUTES = [list_templates, preview_template]

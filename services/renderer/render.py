"""Accepted -> Rendered | RenderFailed, as a pure function.

Everything the sender needs is decided here and recorded in the event: the
final subject, CSS-inlined HTML, a text part (generated from the HTML when the
template has none) and the headers. Rendering the same `accepted` twice gives
the same content and the same Message-ID, so a redelivered event is harmless.
`Date` is left to the sender, which stamps it at send time.
"""

from __future__ import annotations

import re
from typing import Any

import css_inline
import html2text
from jinja2 import Template, TemplateError, UndefinedError
from jinja2.exceptions import SecurityError

from services.renderer.catalog import ISSUED_AT, CatalogTemplate, TemplateCatalog
from services.renderer.tracking import Tracking
from shared.events import Accepted, Rendered, RenderFailed, event_id_for

_UNDEFINED_RE = re.compile(r"^'([^']+)' is undefined$")
_NO_ATTRIBUTE_RE = re.compile(r"has no attribute '([^']+)'$")
# Never fetch a <link>ed stylesheet: rendering does no I/O, and caller HTML must
# not make us request URLs it chose.
_INLINER = css_inline.CSSInliner(load_remote_stylesheets=False)


class _Failure(Exception):
    def __init__(self, reason: str, missing_variable: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.missing_variable = missing_variable


def _run(template: Template, variables: dict[str, Any], part: str) -> str:
    try:
        return template.render(variables)
    except SecurityError as exc:
        raise _Failure(f"{part}: refused by the template sandbox: {exc}") from None
    except UndefinedError as exc:
        message = str(exc)
        match = _UNDEFINED_RE.match(message) or _NO_ATTRIBUTE_RE.search(message)
        raise _Failure(f"{part}: {message}", match.group(1) if match else None) from None
    except TemplateError as exc:
        raise _Failure(f"{part}: {exc}") from None
    except Exception as exc:  # bad vars, e.g. {{ n + 1 }} with n="x": fail, don't crash
        raise _Failure(f"{part}: {type(exc).__name__}: {exc}") from None


def _parts(accepted: Accepted, found: CatalogTemplate | None) -> tuple[str, str | None, str | None]:
    if found is None:
        return accepted.subject or "", accepted.html, accepted.text
    # signed_url() links expire relative to the accepted time: the same mail again
    variables = {**accepted.vars, ISSUED_AT: accepted.occurred_at.timestamp()}
    subject = _run(found.subject, variables, "subject")
    html = _run(found.html, variables, "html") if found.html else None
    text = _run(found.text, variables, "text") if found.text else None
    return subject, html, text


def _inline_css(html: str) -> str:
    try:
        return _INLINER.inline(html)
    except css_inline.InlineError:
        return html


def _html_to_text(html: str) -> str:
    converter = html2text.HTML2Text()
    converter.body_width = 0
    converter.ignore_links = False
    converter.ignore_images = True
    return str(converter.handle(html)).strip() + "\n"


def _headers(
    accepted: Accepted, mail_domain: str, tracking: Tracking | None = None
) -> dict[str, str]:
    ours = {"Message-ID": f"<{accepted.message_id}@{mail_domain}>"}
    if accepted.envelope.reply_to:
        ours["Reply-To"] = ", ".join(str(m) for m in accepted.envelope.reply_to)
    ours["X-Jetpost-Message-Id"] = accepted.message_id
    if accepted.tags:
        ours["X-Jetpost-Tags"] = ", ".join(accepted.tags)
    taken = {name.lower() for name in ours}
    custom = {k: v for k, v in accepted.headers.items() if k.lower() not in taken}
    headers = {**ours, **custom}
    return tracking.headers(accepted, headers) if tracking else headers


def render(
    accepted: Accepted,
    catalog: TemplateCatalog,
    *,
    mail_domain: str,
    tracking: Tracking | None = None,
) -> Rendered | RenderFailed:
    known = accepted.template in catalog.names()
    found = catalog.get(accepted.template) if accepted.template and known else None
    correlation_id = accepted.correlation_id or accepted.message_id
    version = found.version if found else None

    def failed(reason: str, missing_variable: str | None = None) -> RenderFailed:
        return RenderFailed(
            event_id=event_id_for(accepted.message_id, "render_failed"),
            message_id=accepted.message_id,
            causation_id=accepted.event_id,
            correlation_id=correlation_id,
            reason=reason,
            missing_variable=missing_variable,
            template=accepted.template,
            template_version=version,
        )

    if accepted.template and found is None:
        return failed(f"unknown template {accepted.template!r}")
    try:
        raw_subject, html, text = _parts(accepted, found)
    except _Failure as exc:
        return failed(exc.reason, exc.missing_variable)

    subject = " ".join(raw_subject.split())
    if not subject:
        return failed("subject is empty")
    if "\0" in subject:  # str.split() does not treat NUL as whitespace
        return failed("subject contains a NUL character")
    if html is not None and text is None:
        text = _html_to_text(html)
    if html is not None:
        html = _inline_css(html)
        if tracking is not None:  # after the text part: it keeps the real links
            html = tracking.html(accepted, html)
    return Rendered(
        event_id=event_id_for(accepted.message_id, "rendered"),
        message_id=accepted.message_id,
        causation_id=accepted.event_id,
        correlation_id=correlation_id,
        envelope=accepted.envelope,
        subject=subject,
        html=html,
        text=text,
        headers=_headers(accepted, mail_domain, tracking),
        template=accepted.template,
        template_version=version,
        tags=accepted.tags,
        attachments=accepted.attachments,
        bulk=accepted.bulk,
    )


def reuse(
    accepted: Accepted,
    original: Rendered,
    *,
    mail_domain: str,
    tracking: Tracking | None = None,
) -> Rendered:
    """A resend without re-rendering: the earlier message's content as it was sent,
    with this message's own Message-ID and headers."""
    return original.model_copy(
        update={
            "event_id": event_id_for(accepted.message_id, "rendered"),
            "message_id": accepted.message_id,
            "occurred_at": accepted.occurred_at,
            "causation_id": accepted.event_id,
            "correlation_id": accepted.correlation_id or accepted.message_id,
            "envelope": accepted.envelope,
            "headers": _headers(accepted, mail_domain, tracking),
            "tags": accepted.tags,
            "bulk": accepted.bulk,
        }
    )

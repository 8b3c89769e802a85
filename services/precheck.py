"""What can be known about a send command before it is accepted: it parses (addresses,
fields), its template exists, and the template renders with its variables. The API
answers 422 and `jetpost send` exits non-zero with the reason, instead of an id whose
first event is `rejected` or `render_failed`. Intake still checks everything again and
records what it refuses: the log stays the record. Pure: no I/O."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from pydantic import ValidationError

from services.intake.logic import CommandContext, accept
from services.renderer.catalog import TemplateCatalog
from services.renderer.render import render
from shared.commands import SendCommand
from shared.events import RenderFailed
from shared.mailbox import parse_mailbox

CHECK_ID = "precheck"


def errors_of(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False):
        loc = ".".join(str(p) for p in err["loc"]) or "command"
        parts.append(f"{loc}: {err['msg'].removeprefix('Value error, ')}")
    return "; ".join(parts)


def check_command(
    command: SendCommand,
    catalog: TemplateCatalog,
    sender_from: str,
    mail_domain: str,
    declared: Collection[str] | None = None,
) -> str | None:
    """Why this (parsed) command would not render, or None. `catalog` should sign links
    with a throwaway key (like previews): nothing rendered here is ever sent.
    `declared`: the template's variables; when every one is given the render is
    skipped (the common case costs nothing), else it decides (a variable may be optional)."""
    if not command.template:
        return None
    if command.template not in catalog.names():
        return f"template: unknown template {command.template!r}"
    if declared is not None and set(declared) <= command.vars.keys():
        return None
    sender = parse_mailbox(sender_from, operator=True)
    ctx = CommandContext(subject="", seq=None, stored_at=None, default_sender=sender,
                         templates=frozenset(catalog.names()))  # fmt: skip
    result = render(accept(command, ctx, CHECK_ID), catalog, mail_domain=mail_domain)
    if isinstance(result, RenderFailed):
        if result.missing_variable:
            name = result.missing_variable
            return f"vars: missing variable {name!r} for template {command.template!r}"
        return f"template {command.template!r} does not render: {result.reason}"
    return None


def check_send(
    raw: dict[str, Any], catalog: TemplateCatalog, sender_from: str, mail_domain: str
) -> str | None:
    """Why this raw send command would be refused or fail to render, or None."""
    try:
        command = SendCommand.model_validate(raw)
    except ValidationError as exc:
        return errors_of(exc)
    return check_command(command, catalog, sender_from, mail_domain)

"""DELETE /v1/recipients/{address} (admin): forget an address (shared.erasure)."""

from __future__ import annotations

from typing import Annotated

from litestar.di import NamedDependency
from litestar.params import FromPath, QueryParameter
from pydantic import BaseModel, ValidationError

from services.api.auth import ADMIN, SECURITY
from services.api.bus import _reachable
from services.api.problems import Problem
from services.api.routing import delete
from services.api.runtime import Runtime
from shared.erasure import forget
from shared.mailbox import parse_mailbox


class Forgotten(BaseModel):
    messages: int  # message (and other) aggregates purged from the log
    commands: int  # commands deleted from MAIL_CMD
    rows: int  # read-model rows deleted
    files: int  # captured mail files deleted
    suppression_kept: bool
    event_id: str  # the `forgotten` event recording it


def normalized(address: str) -> str:
    try:
        return parse_mailbox(address).email.lower()
    except (ValueError, ValidationError) as exc:
        raise Problem(400, "invalid-request", f"address: {exc}") from None


@delete(
    "/v1/recipients/{address:str}",
    summary="Forget an address: its messages, commands, rows and captured mail (admin)",
    status_code=200,
    guards=ADMIN,
    security=SECURITY,
    tags=["recipients"],
)
async def forget_recipient(
    rt: NamedDependency[Runtime],
    address: FromPath[str],
    keep_suppression: Annotated[bool, QueryParameter(name="keep_suppression")] = False,
) -> Forgotten:
    email = normalized(address)
    rt.bus._check()
    with _reachable("forget"):
        erased = await forget(
            rt.bus.js, email, database_url=rt.settings.database_url,
            capture_dir=rt.settings.data_dir / "capture", keep_suppression=keep_suppression,
        )  # fmt: skip
    return Forgotten(
        messages=len(erased.messages), commands=erased.commands, rows=erased.rows,
        files=erased.files, suppression_kept=erased.suppression_key is not None,
        event_id=erased.event_id,
    )  # fmt: skip


ROUTES = [forget_recipient]

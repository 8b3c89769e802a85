"""Checking the action tokens in links that templates make with `signed_url()`
(activation, password reset): `POST /v1/tokens/verify`, for the application that
receives the click. The token proves jetpost signed (action, subject, expiry); making
a reset single-use is the application's part.
"""

from __future__ import annotations

from datetime import datetime

from litestar.di import NamedDependency
from litestar.params import JSONBody
from pydantic import BaseModel, ConfigDict, Field

from services.api.auth import READ, SECURITY
from services.api.problems import Problem
from services.api.public import Public
from services.api.routing import post
from shared.tokens import MAX_TOKEN_LENGTH, TokenError, TokenExpired, verify_action_token

TAGS = ["tokens"]


class VerifyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: str = Field(min_length=1, max_length=MAX_TOKEN_LENGTH)
    action: str = Field(min_length=1, max_length=128)


class VerifiedToken(BaseModel):
    valid: bool
    action: str
    subject: str
    expires_at: datetime


@post(
    "/v1/tokens/verify",
    summary="Verify an action token from a signed_url() link",
    status_code=200,
    guards=READ,
    security=SECURITY,
    tags=TAGS,
)
async def verify_token(
    pub: NamedDependency[Public], data: JSONBody[VerifyRequest]
) -> VerifiedToken:
    try:
        claims = verify_action_token(pub.keys, data.token, data.action)
    except TokenExpired as exc:
        raise Problem(410, "expired-token", "the token has expired",
                      expires_at=exc.expires_at.isoformat()) from None  # fmt: skip
    except TokenError:
        raise Problem(400, "invalid-token", "the token is not valid for this action") from None
    return VerifiedToken(
        valid=True, action=claims.action, subject=claims.subject, expires_at=claims.expires_at
    )


ROUTES = [verify_token]

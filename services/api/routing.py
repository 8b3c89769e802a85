"""The API's route decorators (`get`, `post`, ...): Litestar's route handlers, with the
route's guards given the handler itself instead of a copy.

Litestar hands each guard `copy(handler)`: a shallow copy of an object of some sixty
attributes, about 20 us on every guarded request (a tenth of a cached `GET`'s CPU).
The copy only shields the handler from a guard that would change it; jetpost's guards
(services.api.auth) read the connection alone and never look at the handler. Every
route of the API is declared with these, so they all take the same path.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from litestar.connection import ASGIConnection
from litestar.enums import HttpMethod
from litestar.handlers import HTTPRouteHandler


class GuardedRoute(HTTPRouteHandler):
    __slots__ = ()

    async def authorize_connection(self, connection: ASGIConnection[Any, Any, Any, Any]) -> None:
        for guard in self.resolve_guards():
            await guard(connection, self)  # type: ignore[misc]  # made async by resolve_guards


Path = str | Sequence[str] | None


def get(path: Path = None, **kwargs: Any) -> GuardedRoute:
    return GuardedRoute(path, http_method=HttpMethod.GET, **kwargs)


def post(path: Path = None, **kwargs: Any) -> GuardedRoute:
    return GuardedRoute(path, http_method=HttpMethod.POST, **kwargs)


def put(path: Path = None, **kwargs: Any) -> GuardedRoute:
    return GuardedRoute(path, http_method=HttpMethod.PUT, **kwargs)


def patch(path: Path = None, **kwargs: Any) -> GuardedRoute:
    return GuardedRoute(path, http_method=HttpMethod.PATCH, **kwargs)


def delete(path: Path = None, **kwargs: Any) -> GuardedRoute:
    return GuardedRoute(path, http_method=HttpMethod.DELETE, **kwargs)

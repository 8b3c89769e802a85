"""Litestar's route decorators (`get`, `post`, ...), with the route's guards given the
handler itself instead of a copy.

Litestar hands each guard `copy(handler)`: a shallow copy of an object of some sixty
attributes, about 20 us on every guarded request (a tenth of a cached `GET`'s CPU).
The copy only shields the handler from a guard that would change it; jetpost's guards
(services.api.auth) read the connection alone and never look at the handler. Every
route of the API is declared with these, so they all take the same path.
"""

from __future__ import annotations

from typing import Any

import litestar
from litestar.connection import ASGIConnection
from litestar.handlers import HTTPRouteHandler


class _GuardedInPlace(HTTPRouteHandler):
    __slots__ = ()

    async def authorize_connection(self, connection: ASGIConnection[Any, Any, Any, Any]) -> None:
        for guard in self.resolve_guards():
            await guard(connection, self)  # type: ignore[misc]  # made async by resolve_guards


class get(_GuardedInPlace, litestar.get):
    __slots__ = ()


class post(_GuardedInPlace, litestar.post):
    __slots__ = ()


class put(_GuardedInPlace, litestar.put):
    __slots__ = ()


class patch(_GuardedInPlace, litestar.patch):
    __slots__ = ()


class delete(_GuardedInPlace, litestar.delete):
    __slots__ = ()

"""What a command may carry, checked before anything else looks at it. Pure.

Every event intake appends must be readable again by every reader of the log (the
projections parse events with pydantic, whose JSON parser stops at 200 levels of
nesting), storable in PostgreSQL (no NUL, no lone surrogate) and writable as a mail
header (no line break of any kind). A command that breaks one of these limits is
`rejected` at once with the reason, never retried as an unexpected error.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from pydantic import BeforeValidator

MAX_DEPTH = 32  # nesting of a whole command (objects and arrays), `vars` included
MAX_INT_DIGITS = 30  # integers beyond this are not numbers anyone means to send
# Every character str.splitlines() breaks on, and NUL: a header value or a tag holding
# one could end a header line in some reader of the mail.
LINE_BREAKS = frozenset("\r\n\0\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029")

# Headers other systems trust (set by receiving servers, DKIM/ARC signers, resenders):
# a caller may not write them, whatever their case.
TRUSTED_HEADERS = frozenset(
    {
        "authentication-results", "received", "received-spf", "return-path",
        "dkim-signature", "domainkey-signature", "delivered-to", "x-original-to",
        "arc-seal", "arc-message-signature", "arc-authentication-results",
    }
)  # fmt: skip
TRUSTED_PREFIXES = ("resent-", "arc-")
MAX_HEADERS = 50  # caller headers on one message
MAX_HEADER_VALUE = 998  # RFC 5322's line limit: one value may not need more
MAX_HEADERS_SIZE = 16 * 1024  # all caller headers together, names and values


def _strict_bool(value: Any) -> Any:
    if not isinstance(value, bool):
        raise ValueError("Input should be a valid boolean: true or false")
    return value


# A boolean that is `true` or `false` and nothing else ("yes", 0, "1" are refused).
# Not pydantic's StrictBool: a caller validating with strict=False (Litestar does)
# would turn that one lax again.
Flag = Annotated[bool, BeforeValidator(_strict_bool)]


class CommandError(ValueError):
    """A command's JSON that cannot be taken; the message is the reason."""


def has_line_break(value: str) -> bool:
    return not LINE_BREAKS.isdisjoint(value)


def is_trusted_header(name: str) -> bool:
    lowered = name.lower()
    return lowered in TRUSTED_HEADERS or lowered.startswith(TRUSTED_PREFIXES)


def check_headers(headers: dict[str, str]) -> None:
    """Count and size; each header's name and value are checked by the model."""
    if len(headers) > MAX_HEADERS:
        raise ValueError(f"at most {MAX_HEADERS} headers")
    size = 0
    for name, value in headers.items():
        if len(value) > MAX_HEADER_VALUE:
            raise ValueError(f"header {name!r} is longer than {MAX_HEADER_VALUE} characters")
        size += len(name) + len(value)
    if size > MAX_HEADERS_SIZE:
        raise ValueError(f"headers are larger than {MAX_HEADERS_SIZE} characters together")


def _is_lone_surrogate_free(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


_INT_LIMIT = 10**MAX_INT_DIGITS


def _plainly_within(value: Any, max_depth: int) -> bool:
    """True only where `_check` finds nothing, without building the places it names:
    plain JSON types (exactly), ASCII strings without a look at their encoding. False
    is not a verdict (a subclass, an unknown type): `_check` decides then."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    pop, push = stack.pop, stack.append
    while stack:
        item, depth = pop()
        kind = type(item)
        if kind is str:
            if not item.isascii() and not _is_lone_surrogate_free(item):
                return False
        elif kind is dict:
            if depth > max_depth:
                return False
            for key, inner in item.items():
                if type(key) is str and not key.isascii() and not _is_lone_surrogate_free(key):
                    return False
                push((inner, depth + 1))
        elif kind is list or kind is tuple:
            if depth > max_depth:
                return False
            stack.extend((inner, depth + 1) for inner in item)
        elif kind is int:
            if abs(item) >= _INT_LIMIT:
                return False
        elif not (item is None or kind is bool or kind is float):
            return False
    return True


def check_value(value: Any, where: str = "command", max_depth: int = MAX_DEPTH) -> None:
    """Depth, lone surrogates and huge integers anywhere in a JSON value; iterative,
    so no nesting can exhaust the stack. Raises CommandError with the place. (Checked
    twice per send command, by intake and by the model: a plain walk first, and only
    where it stops, the one that names places.)"""
    if not _plainly_within(value, max_depth):
        _check(value, where, max_depth)


def _check(value: Any, where: str, max_depth: int) -> None:
    stack: list[tuple[Any, str, int]] = [(value, where, 1)]
    while stack:
        item, path, depth = stack.pop()
        path = path if len(path) <= 200 else path[:197] + "..."
        if isinstance(item, str):
            if not _is_lone_surrogate_free(item):
                raise CommandError(f"{path}: contains a lone surrogate (not valid Unicode)")
        elif isinstance(item, bool | float) or item is None:
            continue
        elif isinstance(item, int):
            if abs(item) >= _INT_LIMIT:
                raise CommandError(f"{path}: integer longer than {MAX_INT_DIGITS} digits")
        elif isinstance(item, dict | list | tuple):
            if depth > max_depth:
                raise CommandError(f"{path}: nested deeper than {max_depth} levels")
            if isinstance(item, dict):
                for key, inner in item.items():
                    if isinstance(key, str) and not _is_lone_surrogate_free(key):
                        raise CommandError(f"{path}: a key contains a lone surrogate")
                    stack.append((inner, f"{path}.{key}", depth + 1))
            else:
                stack.extend((inner, f"{path}.{i}", depth + 1) for i, inner in enumerate(item))


def load_command(raw: bytes) -> dict[str, Any]:
    """The command's JSON object, within the limits above; CommandError otherwise."""
    try:
        payload = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CommandError(f"invalid JSON: {exc}") from None
    except ValueError as exc:  # an integer past Python's 4300-digit conversion limit
        raise CommandError(f"invalid JSON: {str(exc).split(':')[0]}") from None
    except RecursionError:
        raise CommandError(f"invalid JSON: nested deeper than {MAX_DEPTH} levels") from None
    if not isinstance(payload, dict):
        raise CommandError("a command is a JSON object")
    check_value(payload)
    return payload

"""Opaque keyset cursors: base64url of the JSON list of the last row's sort key."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from typing import Any

from services.api.problems import Problem


def encode(*values: Any) -> str:
    plain = [v.isoformat() if isinstance(v, datetime) else v for v in values]
    raw = json.dumps(plain, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(cursor: str, kinds: tuple[type, ...]) -> tuple[Any, ...]:
    """The sort key back, each value checked against `kinds` (datetime or str)."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        values = json.loads(raw)
        if not isinstance(values, list) or len(values) != len(kinds):
            raise ValueError("wrong shape")
        out: list[Any] = []
        for value, kind in zip(values, kinds, strict=True):
            if not isinstance(value, str):
                raise ValueError("not a string")
            out.append(datetime.fromisoformat(value) if kind is datetime else value)
        return tuple(out)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise Problem(400, "invalid-cursor", "cursor is not one this API returned") from None

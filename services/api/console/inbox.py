"""The dev capture inbox: the .eml files the capture sink wrote (named by message id,
each with `<name>.envelope.json` holding MAIL FROM and RCPT TO), newest first."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from services.capture import ENVELOPE_SUFFIX

_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,160}$")


@dataclass(frozen=True)
class Captured:
    name: str  # file name without .eml
    size: int
    mtime: float
    envelope: dict[str, Any]


def _envelope(folder: Path, name: str) -> dict[str, Any]:
    try:
        loaded = json.loads((folder / f"{name}{ENVELOPE_SUFFIX}").read_text())
    except (OSError, ValueError):
        return {}
    return loaded if isinstance(loaded, dict) else {}


def list_captured(folder: Path, limit: int = 200) -> list[Captured]:
    if not folder.is_dir():
        return []
    files = sorted(folder.glob("*.eml"), key=lambda p: p.stat().st_mtime, reverse=True)
    return [
        Captured(p.stem, p.stat().st_size, p.stat().st_mtime, _envelope(folder, p.stem))
        for p in files[:limit]
    ]


def read_captured(folder: Path, name: str) -> tuple[bytes, dict[str, Any]] | None:
    """The mail's bytes and envelope; None for a name that is not a captured file."""
    if not _NAME.match(name) or name.startswith("."):
        return None
    path = folder / f"{name}.eml"
    if not path.is_file():
        return None
    return path.read_bytes(), _envelope(folder, name)

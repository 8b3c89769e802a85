"""DKIM signatures (dkimpy), made once where the MIME bytes are made.

The From domain's key signs: `JETPOST_DKIM_DIR/<domain>/<selector>.pem` (the A-label
domain; with several selectors, the newest file). rsa-sha256, relaxed/relaxed, over
From, To, Cc, Subject, Date, Message-ID, MIME-Version, Content-Type, Reply-To and
List-Unsubscribe + List-Unsubscribe-Post (RFC 8058 wants both covered) when present.

Every retry must send the same bytes: the Date header is the render time (mime.py)
and the signature's `t=` is pinned to it too, so a second signing is byte-identical.
A domain without a key is sent unsigned with one warning, or refused when DKIM is
required (`DkimMissing`).
"""

from __future__ import annotations

import logging
import time
import types
from pathlib import Path

log = logging.getLogger("jetpost.sender.dkim")

SIGNED = (
    "from", "to", "cc", "subject", "date", "message-id", "mime-version", "content-type",
    "reply-to", "list-unsubscribe", "list-unsubscribe-post",
)  # fmt: skip
KEY_CACHE_SECONDS = 60.0


class DkimMissing(Exception):
    """No key for the From domain while JETPOST_DKIM_REQUIRED=true."""


def present_headers(data: bytes) -> list[str]:
    """The SIGNED headers this message has, in SIGNED's order. Pure."""
    head = data.split(b"\r\n\r\n", 1)[0].decode("utf-8", "replace")
    names = {line.split(":", 1)[0].strip().lower()
             for line in head.split("\r\n") if line and line[0] not in " \t"}  # fmt: skip
    return [name for name in SIGNED if name in names]


def sign(data: bytes, domain: str, selector: str, key: bytes, timestamp: int) -> bytes:
    """`data` with a DKIM-Signature header in front. dkimpy reads `t=` from
    time.time(); it is pinned to `timestamp` for the call (synchronous, one thread)."""
    import dkim  # dkimpy takes a third of a second to import: only once signing

    pinned = types.SimpleNamespace(time=lambda: float(timestamp))
    saved = dkim.time
    dkim.time = pinned
    try:
        header = dkim.sign(
            data,
            selector.encode(),
            domain.encode(),
            key,
            canonicalize=(b"relaxed", b"relaxed"),
            include_headers=[h.encode() for h in present_headers(data)],
        )
    finally:
        dkim.time = saved
    return bytes(header) + data


class DkimSigner:
    def __init__(self, key_dir: Path | None, *, required: bool) -> None:
        self._dir = key_dir
        self._required = required
        self._keys: dict[str, tuple[float, tuple[str, bytes] | None]] = {}
        self._warned: set[str] = set()

    def key_for(self, domain: str) -> tuple[str, bytes] | None:
        """(selector, PEM) for the domain, or None."""
        cached = self._keys.get(domain)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        found = None
        folder = self._dir / domain if self._dir is not None else None
        if folder is not None and folder.is_dir() and "/" not in domain and domain[:1] != ".":
            pems = sorted(folder.glob("*.pem"), key=lambda p: (p.stat().st_mtime, p.name))
            if pems:
                found = (pems[-1].stem, pems[-1].read_bytes())
        self._keys[domain] = (time.monotonic() + KEY_CACHE_SECONDS, found)
        return found

    def apply(self, data: bytes, domain: str, timestamp: int) -> bytes:
        key = self.key_for(domain)
        if key is None:
            if self._required:
                raise DkimMissing(f"no DKIM key for {domain} (JETPOST_DKIM_REQUIRED)")
            if domain not in self._warned:
                self._warned.add(domain)
                log.warning("no DKIM key for %s: its mail goes out unsigned", domain)
            return data
        return sign(data, domain, key[0], key[1], timestamp)

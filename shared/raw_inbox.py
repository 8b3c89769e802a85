"""A core-NATS subscription whose handler takes each delivery as the raw bytes the
parser read (subject, reply, payload, header block), called in line.

Through nats-py's own path each delivery builds a header dict, a `Msg`, and goes
through a queue to the subscription's task before its callback runs. The projections'
reader takes every event of MAIL_EVT on its inbox this way (that hop cost more CPU
than folding the event); the pipeline's hot subscriptions too: the answers to its
appends and direct gets (shared/inflight.py) and its consumers' deliveries
(shared/pull.py), ten per mail. `parse_headers` gives, where a dict is needed, the
one nats-py would have built.

nats-py has no public hook for this: the client's `_process_msg` (what its protocol
parser calls for every MSG/HMSG) is wrapped, once per client, and deliveries to the
subscriptions made here are taken before it; every other one goes on as before. The
subscription itself is an ordinary one, so reconnects subscribe it again. The
client's parser takes the fast path of shared/nats_parser.py, which hands these
deliveries over as it reads them.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Awaitable, Callable
from typing import Any

import nats.js.api
from nats.aio.client import Client
from nats.aio.subscription import Subscription

from shared import nats_parser
from shared.nats_parser import RawHandler, deliver

_HOOKED = "_jetpost_raw_handlers"
_EXPECTED = ["sid", "subject", "reply", "data", "headers"]


def _hook(nc: Client) -> dict[int, RawHandler]:
    """The client's table of raw handlers by subscription id, its hook installed."""
    handlers: dict[int, RawHandler] | None = getattr(nc, _HOOKED, None)
    if handlers is not None:
        return handlers
    original: Callable[..., Awaitable[None]] = nc._process_msg
    if list(inspect.signature(original).parameters) != _EXPECTED:  # a nats-py we do not know
        raise RuntimeError("nats-py's Client._process_msg changed: shared.raw_inbox needs review")
    table: dict[int, RawHandler] = {}

    async def process_msg(
        sid: int, subject: bytes, reply: bytes, data: bytes, headers: bytes | None
    ) -> None:
        if not deliver(table, sid, subject, reply, data, headers):
            await original(sid, subject, reply, data, headers)

    setattr(nc, _HOOKED, table)
    nc._process_msg = process_msg  # type: ignore[method-assign]
    nats_parser.install(nc, table)  # its fast path hands them over before this hook
    return table


async def subscribe_raw(nc: Client, subject: str, handler: RawHandler) -> Subscription:
    """Subscribe `handler` to `subject`; `unsubscribe_raw` ends it."""
    table = _hook(nc)
    sub = await nc.subscribe(subject)
    table[sub._id] = handler
    return sub


async def unsubscribe_raw(nc: Client, sub: Subscription) -> None:
    table: dict[int, Any] = getattr(nc, _HOOKED, {})
    table.pop(sub._id, None)
    await sub.unsubscribe()


STATUS_LINE = b"NATS/1.0 "  # a header block that opens with a status (404, 408, 409...)


def header(block: bytes | None, name: bytes) -> str | None:
    """One header's value from a raw header block (`NATS/1.0\\r\\nName: value\\r\\n...`);
    `name` is matched as written, with its colon (e.g. b"traceparent:")."""
    if not block:
        return None
    at = block.find(b"\r\n" + name)
    if at < 0:
        return None
    start = at + 2 + len(name)
    end = block.find(b"\r\n", start)
    return block[start : end if end >= 0 else len(block)].decode(errors="replace").strip()


_SPACE = re.compile(r"\s")  # str.isspace() for every ASCII character (the names are)


def parse_lines(raw: bytes) -> dict[str, str]:
    """nats-py's `Client._parse_header_lines`, with a regex where it tests each
    character of a name in a generator: 4.0 µs instead of 6.7 for a direct get's five
    headers. tests/unit/test_raw_headers.py holds the two equal."""
    out: dict[str, str] = {}
    for line in raw.split(b"\r\n"):
        if not line:
            continue
        name, sep, value = line.partition(b":")
        if not sep:
            continue
        try:
            key = name.strip().decode("ascii")
        except UnicodeDecodeError:
            continue
        if _SPACE.search(key) is None:
            out[key] = value.strip().decode("utf-8", "replace")
    return out


_STATUS = nats.js.api.Header.STATUS.value
_DESCRIPTION = nats.js.api.Header.DESCRIPTION  # the member itself: nats-py's key
_HDR_LINE = b"NATS/1.0"


def parse_headers(block: bytes | None) -> dict[str, str] | None:
    """The header dict nats-py's `Client._process_headers` makes of a header block
    (None for none), in line: its steps, its line parser, its quirks, and a property
    test against it (tests/unit/test_raw_headers.py)."""
    if not block:
        return None
    hdr: dict[str, str] | None = None
    rest = block[len(_HDR_LINE) :]
    if rest[:1] == b" ":  # an inline status: "NATS/1.0 408 Request Timeout\r\n..."
        line = block[len(_HDR_LINE) + 1 :]
        status = line[:3].strip().decode()
        desc = line[4 : len(line) - 4]
        hdr = {}
        if status.isdigit():
            hdr[_STATUS] = status
        rest = rest[rest.find(b"\r\n") + 2 :]
        if desc:
            i = desc.find(b"\r\n")
            if i > 0:
                hdr[_DESCRIPTION] = desc[:i].decode()
                hdr.update(parse_lines(desc[i + 2 :]))
            else:
                hdr[_DESCRIPTION] = desc.decode()
    if not len(rest) > 2:
        return hdr
    parsed = parse_lines(block[len(_HDR_LINE) + 2 :])
    if hdr:
        hdr.update(parsed)
    else:
        hdr = parsed
    return hdr or None

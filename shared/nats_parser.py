"""nats-py's protocol parser with a fast path for the messages themselves.

nats-py's `Parser.parse` reads each MSG/HMSG control line with two regular
expressions, keeps its arguments in a dict, cuts the buffer twice per message and
awaits the client's `_process_msg`, a coroutine, for each. Every event a replay reads
and about ten messages per mail in the pipeline pass through it.

`parse` here keeps the same state the same way (the parser's `buf`, `state`, `needed`,
`header_needed`, `msg_arg`), and reads a MSG/HMSG control line with nats-py's own two
patterns, anchored where the line starts instead of at the buffer's start, so it reads
what they read. But it cuts the buffer once per read, not twice per message, and hands
a delivery to a raw subscription (shared.raw_inbox) to its handler in line. Anything
else (PING, PONG, +OK, -ERR, INFO, a malformed or unknown line) goes, with the rest of
that read, to nats-py's own `parse`, which decides. tests/unit/test_nats_parser.py
holds the two equal on generated streams cut into reads at generated places.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import logging
import re
from collections.abc import Callable

from nats.aio.client import Client
from nats.protocol.parser import (
    AWAITING_CONTROL_LINE,
    AWAITING_MSG_PAYLOAD,
    HMSG_RE,
    MSG_RE,
    Parser,
)

# (subject, reply, payload, header block or None)
RawHandler = Callable[[bytes, bytes, bytes, bytes | None], None]

log = logging.getLogger("jetpost.nats")

_ORIGINAL = Parser.parse
_KNOWN_PARSE = "7d6165f1766cccd1"  # nats-py 2.16's, see _known
# nats-py's own patterns without their `\A`, matched where a control line starts
_MSG = re.compile(MSG_RE.pattern.removeprefix(rb"\A"))
_HMSG = re.compile(HMSG_RE.pattern.removeprefix(rb"\A"))
_H = ord("H")  # the first byte picks the one of the two that can match


def deliver(table: dict[int, RawHandler], sid: int, subject: bytes, reply: bytes,
            data: bytes, headers: bytes | None) -> bool:  # fmt: skip
    """Hand a delivery to its raw handler, if its subscription has one. An exception is
    logged, not raised: nats-py's read loop ends for good on any it sees."""
    handler = table.get(sid)
    if handler is None:
        return False
    try:
        handler(subject, reply, data, headers)
    except Exception:
        log.exception("raw handler of subscription %d failed; delivery passed over", sid)
    return True


async def parse(self: Parser, table: dict[int, RawHandler], data: bytes = b"") -> None:
    """`Parser.parse`, fast for messages (see the module's docstring)."""
    buf = self.buf
    buf.extend(data)
    view = bytes(buf)  # slices of bytes are bytes, as nats-py passes them on
    size = len(view)
    pos = 0
    try:
        while pos < size:
            if self.state == AWAITING_MSG_PAYLOAD:  # a payload cut by the last read
                start, needed, hsize = pos, self.needed, self.header_needed
                if size - start < needed + 2:
                    return
                arg = self.msg_arg
                subject, sid, reply = arg["subject"], arg["sid"], arg["reply"]
            else:
                line = (_HMSG if view[pos] == _H else _MSG).match(view, pos)
                if line is None:
                    break
                groups = line.groups()
                try:
                    if len(groups) == 6:
                        subject, sid_, _, reply_, hsize_, needed_ = groups
                        hsize = int(hsize_)
                    else:
                        subject, sid_, _, reply_, needed_ = groups
                        hsize = 0
                    sid, needed = int(sid_), int(needed_)
                except ValueError:
                    break  # nats-py's parse says what is malformed
                reply = reply_ or b""
                start = line.end()
                self.needed = needed
                if size - start < needed + 2:  # the payload is still on its way
                    self.msg_arg.update(subject=subject, sid=sid, reply=reply)
                    self.header_needed = hsize
                    self.state = AWAITING_MSG_PAYLOAD
                    pos = start
                    return
            if hsize > 0:
                headers: bytes | None = view[start : start + hsize]
                payload = view[start + hsize : start + needed]
            else:
                headers, payload = None, view[start : start + needed]
            self.header_needed = 0
            self.state = AWAITING_CONTROL_LINE
            pos = start + needed + 2
            if not deliver(table, sid, subject, reply, payload, headers):
                await self.nc._process_msg(sid, subject, reply, payload, headers)
                if self.buf is not buf:  # reset meanwhile (a reconnect): as nats-py stops
                    return
        else:
            return
    finally:
        del buf[:pos]
    await _ORIGINAL(self)  # the rest of this read: nats-py's own parse decides


def _known() -> bool:
    """Whether nats-py's `Parser.parse` is the one this module was written beside and
    tested against (its source's digest): any other is left alone."""
    return _digest() == _KNOWN_PARSE


@functools.cache
def _digest() -> str | None:
    """The digest of nats-py's `Parser.parse` source, read once per process."""
    try:
        source = inspect.getsource(_ORIGINAL)
    except (OSError, TypeError):
        return None
    return hashlib.sha256(source.encode()).hexdigest()[:16]


def install(nc: Client, table: dict[int, RawHandler]) -> None:
    """Make `nc`'s parser take the fast path, handing raw subscriptions' deliveries
    (`table`, by subscription id) to their handlers in line. The parser object and its
    state stay the same (a reconnect resets it, and it keeps this `parse`). With a
    nats-py whose parser differs, nothing changes but a warning."""
    if not _known():
        log.warning("nats-py's Parser.parse is not the one shared.nats_parser knows; "
                    "its fast path stays off")  # fmt: skip
        return
    ps = nc._ps

    async def fast(data: bytes = b"") -> None:
        await parse(ps, table, data)

    ps.parse = fast  # type: ignore[method-assign]

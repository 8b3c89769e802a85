"""shared.raw_inbox.parse_headers gives, for any header block, the dict nats-py's own
`Client._process_headers` gives: plain headers, the server's inline statuses (404,
408 with pending counts, 409, 503, idle heartbeats) and malformed lines alike."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from hypothesis import given, settings
from hypothesis import strategies as st
from nats.aio.client import Client

from shared.raw_inbox import parse_headers, parse_lines

_name = st.text(st.sampled_from("abcXYZ-_09 :\t"), min_size=0, max_size=8)
_value = st.text(st.sampled_from("ab 0:\t-é\x00/"), min_size=0, max_size=10)
_line = st.tuples(_name, _value).map(lambda nv: f"{nv[0]}: {nv[1]}") | _value
_lines = st.lists(_line, max_size=4).map(lambda ls: "".join(f"{x}\r\n" for x in ls))
_status = st.sampled_from(["100", "404", "408", "409", "503", "20x", "4", ""])
_desc = st.sampled_from(["", "Idle Heartbeat", "Request Timeout", "No Messages",
                         "Message Not Found", "Consumer Deleted", "a: b"])  # fmt: skip
PLAIN = _lines.map(lambda ls: f"NATS/1.0\r\n{ls}\r\n")
STATUS = st.tuples(_status, _desc, _lines).map(
    lambda t: f"NATS/1.0 {t[0]}{' ' + t[1] if t[1] else ''}\r\n{t[2]}\r\n"
)
REAL = st.sampled_from([
    "NATS/1.0\r\nNats-Msg-Id: m1:accepted:1\r\nNats-Expected-Stream: MAIL_EVT\r\n\r\n",
    "NATS/1.0 408 Request Timeout\r\nNats-Pending-Messages: 16\r\nNats-Pending-Bytes: 0\r\n\r\n",
    "NATS/1.0 404 No Messages\r\n\r\n",
    "NATS/1.0 503\r\n\r\n",
    "NATS/1.0 100 Idle Heartbeat\r\nNats-Last-Consumer: 3\r\nNats-Last-Stream: 9\r\n\r\n",
    "NATS/1.0\r\nNats-Stream: MAIL_EVT\r\nNats-Subject: mail.evt.x.rendered\r\n"
    "Nats-Sequence: 42\r\nNats-Time-Stamp: 2026-12-02T10:00:00.1Z\r\n"
    "traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\n\r\n",
])  # fmt: skip


def nats_py(block: bytes | None) -> dict[str, str] | None:
    return asyncio.run(Client()._process_headers(block))


def outcome(parse: Callable[[bytes], object], block: bytes) -> object:
    """What `parse` gives, or the type of what it raises (a status line cut inside a
    UTF-8 character fails both alike)."""
    try:
        return parse(block)
    except Exception as exc:
        return type(exc)


@settings(max_examples=400, deadline=None)
@given(REAL | PLAIN | STATUS)
def test_the_same_dict_as_nats_py(text: str) -> None:
    block = text.encode()
    assert outcome(parse_headers, block) == outcome(nats_py, block)


def test_no_block_is_no_headers() -> None:
    assert parse_headers(None) is None and parse_headers(b"") is None


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=60) | st.lists(st.sampled_from(
    [b"a", b"B-c", b":", b" ", b"\t", b"\x1c", b"\x1f", b"\x0b", b"\r\n", b"\xc3\xa9", b"\xff"]
), max_size=20).map(b"".join))  # fmt: skip
def test_header_lines_parse_as_nats_py_parses_them(raw: bytes) -> None:
    assert parse_lines(raw) == Client._parse_header_lines(raw)

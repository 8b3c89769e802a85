"""shared/wire.py's publish leaves in nats-py's pending buffer exactly what
`Client.publish` leaves there, and refuses exactly what it refuses, for generated
subjects, replies, header keys and values (CR, LF, spaces, non-ASCII, empty and
invalid keys) and payloads, on unconnected clients (publishes are buffered)."""

from __future__ import annotations

import asyncio
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st
from nats.aio.client import Client

from shared import wire

TOKEN = "!#$%&'*+-.^_`|~0123456789AZaz"
subjects = st.text(alphabet=st.sampled_from([*"abc.*>_-9", " ", "\t", "\r", "\n", "é"]),
                   max_size=12)  # fmt: skip
keys = st.one_of(
    st.sampled_from(["Nats-Msg-Id", "Nats-Expected-Last-Subject-Sequence", "traceparent"]),
    st.text(alphabet=st.sampled_from(TOKEN), max_size=6),
    st.text(alphabet=st.sampled_from([*TOKEN, " ", ":", "\r", "\n", "é", "("]), max_size=6),
)
values = st.text(alphabet=st.sampled_from([*"ab 1:", "\r", "\n", "\t", "é", "😀"]), max_size=10)
headers = st.one_of(st.none(), st.dictionaries(keys, values, max_size=4))
payloads = st.binary(max_size=40)


def client() -> Client:
    """Unconnected, with nats-py's default pending buffer: publishes are buffered."""
    nc = Client()
    nc._max_pending_size = 2 * 1024 * 1024
    return nc


def outcome(publish: Any, subject: str, reply: str, payload: bytes, hdrs: Any) -> Any:
    nc = client()
    try:
        asyncio.run(publish(nc, subject, payload, reply, hdrs))
    except Exception as exc:
        return type(exc)
    return nc._pending, nc._pending_data_size, dict(nc.stats)


@settings(max_examples=600, deadline=None)
@given(subjects, st.one_of(st.just(""), subjects), payloads, headers)
@example("mail.evt.m1.attempted", "_INBOX.x.1", b"{}", {"Nats-Msg-Id": "m1:attempted:1"})
@example("a", "", b"", {" Nats-Expected-Stream ": " MAIL_EVT\r\n", "": "skipped"})
@example("a", "", b"x", {"Bad Key": "v"})
def test_publish_leaves_the_bytes_nats_py_leaves(
    subject: str, reply: str, payload: bytes, hdrs: dict[str, str] | None
) -> None:
    ours = outcome(wire.publish, subject, reply, payload, hdrs)
    theirs = outcome(Client.publish, subject, reply, payload, hdrs)
    assert ours == theirs


def test_a_closed_or_oversized_publish_is_refused_as_nats_py_refuses_it() -> None:
    for name, value in (("_status", Client.CLOSED), ("_max_payload", 3),
                        ("_max_pending_size", 0)):  # fmt: skip
        found = []
        for publish in (wire.publish, Client.publish):
            nc = client()
            setattr(nc, name, value)
            try:
                asyncio.run(publish(nc, "a.b", b"four", "", None))
            except Exception as exc:
                found.append(type(exc).__name__)
        assert len(found) == 2 and found[0] == found[1]


def test_enable_routes_the_clients_own_publishes() -> None:
    nc = client()
    wire.enable(nc)
    asyncio.run(nc.publish("a.b", b"x", headers={"K": "v"}))
    assert nc._pending == [b"HPUB a.b  18 19\r\nNATS/1.0\r\nK: v\r\n\r\nx\r\n"]

"""nats-py's `Client.publish`, the same checks and the same bytes, with less per call;
installed on the connections whose hot path shared/inflight.py takes (`enable`).

nats-py's own pieces do the checks and build the command (its subject check, header
key pattern, value translation, PUB/HPUB formatting); what differs is the path between
them. The pipeline publishes about eight times per mail: four appends, a lookup and three
acks. Per publish nats-py checks subject and reply, builds the header block byte by
byte (a regex per key, every time), formats the command, and awaits `_send_command`
before its pending buffer has the bytes; the flusher is kicked when its queue is
empty. Here each distinct header key is checked once, the block and the command are
joined at once, and the bytes go to the same buffer, with the same size accounting,
the same forced flush past the pending limit and the same kick of the flusher.
tests/unit/test_wire.py holds the bytes (and the refusals of bad subjects and header
keys) equal to `Client._send_publish`'s for generated subjects, headers and payloads.
"""

from __future__ import annotations

import types
from typing import Any

from nats import errors
from nats.aio.client import _HEADER_KEY_RE, _HEADER_VALUE_NEWLINES, Client, _validate_subject
from nats.protocol.command import hpub_cmd, pub_cmd

_keys: dict[str, bytes] = {}  # a key as given -> `Key: ` (b"": an empty key, skipped)
MAX_KEYS = 1024


def _key(given: str) -> bytes:
    """nats-py's check of a header key, once per distinct key."""
    found = _keys.get(given)
    if found is None:
        key = given.strip()
        if key and not _HEADER_KEY_RE.fullmatch(key):
            raise errors.BadHeaderError(key)
        found = key.encode() + b": " if key else b""
        if len(_keys) < MAX_KEYS:
            _keys[given] = found
    return found


def header_block(headers: dict[str, str]) -> bytes:
    """`NATS/1.0`, a line per header, an empty line: nats-py's block."""
    parts = [b"NATS/1.0\r\n"]
    for given, value in headers.items():
        key = _key(given)
        if key:
            value = value.strip()
            if "\r" in value or "\n" in value:  # translate() is a dict lookup per character
                value = value.translate(_HEADER_VALUE_NEWLINES)
            parts += (key, value.encode(), b"\r\n")
    parts.append(b"\r\n")
    return b"".join(parts)


def command(subject: str, reply: str, payload: bytes, headers: dict[str, str] | None) -> bytes:
    """The PUB or HPUB command nats-py sends for this message."""
    if headers is None:
        return pub_cmd(subject, reply, payload)
    return hpub_cmd(subject, reply, header_block(headers), payload)


async def publish(
    nc: Client,
    subject: str,
    payload: bytes = b"",
    reply: str = "",
    headers: dict[str, str] | None = None,
) -> None:
    """`nc.publish(subject, payload, reply, headers)`: the same refusals, in the same
    order, and the same bytes in nats-py's pending buffer."""
    if not nc._skip_subject_validation:
        _validate_subject(subject)
        if reply:
            _validate_subject(reply)
    if nc.is_closed:
        raise errors.ConnectionClosedError
    if nc.is_draining_pubs:
        raise errors.ConnectionDrainingError
    size = len(payload)
    if not nc.is_connected and (
        nc._max_pending_size <= 0 or size + nc._pending_data_size > nc._max_pending_size
    ):
        raise errors.OutboundBufferLimitError
    if size > nc._max_payload:
        raise errors.MaxPayloadError
    if subject == "":
        raise errors.BadSubjectError
    cmd = command(subject, reply, payload, headers)
    nc.stats["out_msgs"] += 1
    nc.stats["out_bytes"] += size
    nc._pending.append(cmd)
    nc._pending_data_size += len(cmd)
    if nc._max_pending_size > 0 and nc._pending_data_size > nc._max_pending_size:
        await nc._flush_pending(force_flush=True)
    if nc._flush_queue is not None and nc._flush_queue.empty():
        await nc._flush_pending()


def enable(nc: Client) -> None:
    """Every publish of this connection (nats-py's own too: requests, acks, JetStream
    publishes) goes through `publish` from now on."""
    bound: Any = types.MethodType(publish, nc)
    nc.publish = bound  # type: ignore[method-assign]

"""Several thousand hostile commands interleaved with good ones (issue 14, fault
suite): each bad one becomes `rejected` with a reason of its own (never the
"internal error" path, never a retry), every good one is delivered, and the read
models keep up with all of it."""

from __future__ import annotations

import json
import random
import uuid
from typing import Any

import pytest
from nats.js import JetStreamContext

from services.capture import CaptureSink
from tests.eventlog_reader import read_all, wait_for_count
from tests.faults.harness import (
    System,
    audit,
    command,
    publish,
    read_models_agree,
    settle,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]
HOSTILE = 3000
GOOD = 100


def deep(levels: int) -> bytes:
    return b"[" * levels + b"]" * levels


BREAKS = "\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029\r\n"
TRUSTED = ["Authentication-Results", "Resent-To", "Resent-Bcc", "ARC-Seal", "Received",
           "DKIM-Signature"]  # fmt: skip


def hostile(rng: random.Random) -> bytes:
    """One bad command, of the kinds issue 14 found and a few more."""
    base: dict[str, Any] = {"to": "a@example.com", "subject": "s", "text": "t"}
    kind = rng.randrange(14)
    if kind == 0:  # vars nested past the limit (200-255 once stopped the read models)
        return (
            b'{"to":"a@example.com","template":"welcome","vars":{"v":'
            + deep(rng.randint(33, 400))
            + b"}}"
        )
    if kind == 1:  # a lone surrogate
        code = f"{rng.randint(0xD800, 0xDFFF):04x}".encode()
        return b'{"to":"a@example.com","subject":"\\u' + code + b'","text":"t"}'
    if kind == 2:  # an integer of thousands of digits
        return (
            b'{"to":"a@example.com","template":"welcome","vars":{"n":'
            + b"7" * rng.randint(31, 5000)
            + b"}}"
        )
    if kind == 3:  # a loose boolean
        return dump({**base, "transactional": rng.choice(["yes", 0, 1, "true", None])})
    if kind == 4:  # a line break that is not CR/LF, in a header value
        return dump({**base, "headers": {"X-A": f"v{rng.choice(BREAKS)}w"}})
    if kind == 5:  # ... in a tag
        return dump({**base, "tags": [f"t{rng.choice(BREAKS)}u"]})
    if kind == 6:  # a header other systems trust
        return dump({**base, "headers": {rng.choice(TRUSTED): "x"}})
    if kind == 7:  # too many headers
        return dump({**base, "headers": {f"X-{i}": "v" for i in range(rng.randint(51, 200))}})
    if kind == 8:  # too many recipients
        return dump({**base, "to": [f"u{i}@example.com" for i in range(rng.randint(51, 3000))]})
    if kind == 9:
        return dump({**base, "to": "not an address"})
    if kind == 10:
        return dump({**base, "unknown": 1})
    if kind == 11:  # noise
        return rng.randbytes(rng.randint(0, 200))
    if kind == 12:  # JSON, but not an object
        return dump(rng.choice([[], 1, "s", None, True]))
    return b"[" * 100_000  # nesting past any parser's recursion


def dump(value: Any) -> bytes:
    return json.dumps(value).encode()


async def test_thousands_of_hostile_commands_interleaved_with_good_ones(
    system: System, js: JetStreamContext, sink: CaptureSink, database_url: str
) -> None:
    rng = random.Random(14)
    good = [uuid.uuid4().hex for _ in range(GOOD)]
    payloads = [hostile(rng) for _ in range(HOSTILE)]
    for mid in good:
        payloads.insert(rng.randrange(len(payloads) + 1), json.dumps(command(mid)).encode())
    system.start()
    await publish(js, payloads)
    await settle(js, good, timeout=150, system=system)
    result = await audit(js, good, sink)
    assert result.outcomes == {"delivered": GOOD}
    assert set(result.copies) == set(good)

    await wait_for_count(js, HOSTILE, "mail.evt.*.rejected", timeout=60)
    reasons = [getattr(e, "reason", "") for e in await read_all(js, "mail.evt.*.rejected")]
    assert len(reasons) == HOSTILE
    assert all(reasons) and not [r for r in reasons if r.startswith("internal error")]
    await read_models_agree(js, database_url, good)

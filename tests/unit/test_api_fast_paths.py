"""The API's fast paths keep their answers: the key cache forgets changed keys, reads
coalesced into one query give each caller its own row (or its failure), and a message
encoded straight from its row is byte for byte what the model made, and sent as
Litestar would have sent it; request metrics read out as prometheus_client's."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from litestar import MediaType, Response, get
from litestar.plugins.pydantic import PydanticInitPlugin
from litestar.serialization import encode_json, get_serializer
from litestar.testing import create_test_client
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from services.api.coalesce import Coalescer
from services.api.encoded import EncodedJSON
from services.api.keys import ApiKey
from services.api.metrics import Metrics
from services.api.runtime import KeyCache
from services.api.schemas import Message, message_json


def test_key_cache_forgets_a_changed_key_and_lookups_that_raced_it() -> None:
    cache = KeyCache(ttl=60)
    alice, bob = ApiKey("key_a", "", ("read",)), ApiKey("key_b", "", ("send",))
    cache.put("ha", alice)
    cache.put("hb", bob)
    cache.forget("key_a")
    assert cache.get("ha") is None and cache.get("hb") == bob
    # a lookup that began before the key changed must not put the old answer back
    began = cache.generation
    cache.forget("key_a")
    cache.put("ha", alice, began)
    assert cache.get("ha") is None
    cache.put("ha", alice, cache.generation)
    assert cache.get("ha") == alice
    cache.clear()
    assert cache.get("ha") is None and cache.get("hb") is None


class Rows:
    def __init__(self, fail: frozenset[str] = frozenset()) -> None:
        self.batches: list[list[str]] = []
        self.fail = fail
        self.gate = asyncio.Event()
        self.gate.set()

    async def fetch(self, keys: Sequence[str]) -> Mapping[str, str]:
        self.batches.append(list(keys))
        await self.gate.wait()
        if self.fail & set(keys):
            raise OSError("database away")
        return {k: k.upper() for k in keys if not k.startswith("missing")}


async def test_concurrent_reads_share_queries_and_get_their_own_rows() -> None:
    rows = Rows()
    reads = Coalescer(rows.fetch, max_in_flight=1)
    alone = await reads.get("a")
    assert alone == "A" and rows.batches == [["a"]]  # no waiting for company
    rows.batches.clear()
    rows.gate.clear()  # the first batch stays in flight: the rest queue behind it
    first = asyncio.ensure_future(reads.get("b"))
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    later = [asyncio.ensure_future(reads.get(k)) for k in ("c", "missing", "c", "d")]
    await asyncio.sleep(0)
    rows.gate.set()
    assert await first == "B"
    assert await asyncio.gather(*later) == ["C", None, "C", "D"]
    assert rows.batches == [["b"], ["c", "missing", "d"]]


async def test_a_failed_batch_fails_its_reads_and_not_the_next() -> None:
    rows = Rows(fail=frozenset({"bad"}))
    reads = Coalescer(rows.fetch)
    results = await asyncio.gather(reads.get("bad"), reads.get("x"), return_exceptions=True)
    assert all(isinstance(r, OSError) for r in results)
    assert await reads.get("y") == "Y"


async def test_a_caller_gone_does_not_disturb_the_others() -> None:
    rows = Rows()
    rows.gate.clear()
    reads = Coalescer(rows.fetch, max_in_flight=1)
    busy = asyncio.ensure_future(reads.get("a"))
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    gone, kept = asyncio.ensure_future(reads.get("b")), asyncio.ensure_future(reads.get("c"))
    await asyncio.sleep(0)
    gone.cancel()
    rows.gate.set()
    assert await busy == "A" and await kept == "C"
    with pytest.raises(asyncio.CancelledError):
        await gone


def _row(**values: object) -> dict[str, object]:
    row: dict[str, object] = {f: None for f in Message.model_fields}
    row.update({"to_addrs": [], "cc_addrs": [], "bcc_addrs": [], "tags": [], "resent_as": [],
                "attempts": 0, "opens": 0, "clicks": 0})  # fmt: skip
    for name in ("to", "cc", "bcc", "as_of"):
        row.pop(name)
    row.update(values)
    return row


@pytest.mark.parametrize(
    "row",
    [
        _row(id="m1", status="queued", to_addrs=["a@example.com"],
             created_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
             updated_at=datetime(2026, 1, 2, 3, 4, 5, 600, tzinfo=UTC)),
        _row(id="m2", status="delivered", to_addrs=["Zoë <z@example.com>", "b@example.org"],
             cc_addrs=["c@example.com"], sender="S <s@example.com>", subject='Hé "quoted"\n',
             template="welcome", template_version="abc", tags=["a", "b"], attempts=2,
             last_smtp_code=250, last_error=None, opens=3, clicks=1, resent_as=["m3"],
             trace_id="0af7651916cd43dd8448eb211c80319c",
             created_at=datetime(2026, 1, 2, tzinfo=timezone(timedelta(hours=2))),
             updated_at=datetime(2026, 1, 2, 0, 0, 1, 123456, tzinfo=UTC),
             delivered_at=datetime(2026, 1, 2, 0, 0, 1, tzinfo=UTC),
             send_at=datetime(2026, 1, 3, tzinfo=UTC)),
    ],
)  # fmt: skip
def test_a_message_encoded_from_its_row_is_what_the_model_gave(row: dict[str, object]) -> None:
    serializer = get_serializer(PydanticInitPlugin.encoders())  # how Litestar encodes models
    assert message_json(row) == encode_json(Message.from_row(row), serializer=serializer)


def _answers(status: int, extra: dict[str, str] | None) -> dict[str, Any]:
    """Status, headers and body of the same JSON sent by EncodedJSON and by Litestar."""
    body = b'{"id":"m1","subject":"caf\xc3\xa9"}'

    @get("/encoded", status_code=status, sync_to_thread=False, response_headers=extra)
    def encoded() -> Response[dict[str, str]]:
        return EncodedJSON(body, status_code=status)  # type: ignore[return-value]

    @get("/litestar", status_code=status, sync_to_thread=False, response_headers=extra)
    def litestar() -> Response[dict[str, str]]:
        return Response(body, status_code=status, media_type=MediaType.JSON)  # type: ignore[arg-type]

    with create_test_client([encoded, litestar], openapi_config=None) as client:
        got = {path: client.get(path) for path in ("/encoded", "/litestar")}
    assert got["/encoded"].content == body
    return {p: (r.status_code, list(r.headers.items()), r.content) for p, r in got.items()}


def test_an_encoded_answer_is_litestars_answer_on_the_wire() -> None:
    for status in (200, 202):
        answers = _answers(status, None)
        assert answers["/encoded"] == answers["/litestar"]
        assert answers["/encoded"][0] == status
    # a route's own headers take Litestar's general path, and are kept
    answers = _answers(202, {"X-Extra": "1"})
    assert answers["/encoded"] == answers["/litestar"]
    assert ("x-extra", "1") in answers["/encoded"][1]


def test_request_series_read_out_as_prometheus_clients_counter_and_histogram() -> None:
    registry = CollectorRegistry()
    counter = Counter("jetpost_api_requests", "HTTP requests answered, by route and status",
                      ["method", "route", "status"], registry=registry)  # fmt: skip
    histogram = Histogram("jetpost_api_request_duration_seconds", "HTTP request latency, by route",
                          ["method", "route"], registry=registry)  # fmt: skip
    metrics = Metrics()
    seen = [("GET", "/v1/messages/{message_id:str}", 200, 0.004), ("GET", "/x", 404, 0.005),
            ("POST", "/v1/messages", 202, 0.0051), ("GET", "/x", 404, 0.25),
            ("GET", "/x", 500, 99.0), ("GET", "/x", 404, 0.0)]  # fmt: skip
    for method, route, status, seconds in seen:
        counter.labels(method, route, str(status)).inc()
        histogram.labels(method, route).observe(seconds)
        metrics.observe(method, route, status, seconds)

    def text(registry: CollectorRegistry) -> str:  # creation times differ
        return re.sub(r"_created(\{.*\}) \S+", r"_created\1 T", generate_latest(registry).decode())

    assert text(metrics.registry) == text(registry)
    assert 'jetpost_api_requests_total{method="GET",route="/x",status="404"} 3.0' in text(registry)

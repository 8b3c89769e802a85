"""One contract, every provider: the same tests run against smtp (a relay), capture
(the dev sink), mx (a local DNS responder and an MX sink), kumomta (an HTTP server
speaking KumoMTA's injection API), http_json (a JSON web hook) and log.

- a mail is delivered once, with exactly the bytes it was given;
- a recipient the peer refuses is the recipient's fate (bounced when alone, listed
  under `refused` otherwise), never a provider failure;
- a peer that cannot be reached is a deferral, counted against the provider (for
  mx:// against that domain only, see mx.py).
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from services.sender.dns_lookup import MxResolver
from services.sender.http_json import HttpJsonMailer
from services.sender.kumomta import KumoMailer
from services.sender.log import LogMailer
from services.sender.mailer import Mail, Mailer
from services.sender.mx import MxMailer
from services.sender.registry import build_router
from services.sender.smtp import SmtpMailer
from shared.settings import Settings, SmtpTarget
from tests.delivery_peers import (
    DnsResponder,
    JsonHttpServer,
    PickySink,
    json_webhook,
    kumomta_inject,
)

KINDS = ("smtp", "capture", "mx", "kumomta", "http_json", "log")


@dataclass
class Backend:
    mailer: Mailer
    received: Callable[[], list[tuple[tuple[str, ...], bytes]]]
    stop_peer: Callable[[], Any]
    refuses: bool = True  # the peer can refuse a recipient
    counts_against_provider: bool = True
    closers: list[Callable[[], Any]] = field(default_factory=list)


def make_mail(*rcpts: str) -> Mail:
    data = (
        b"From: a@jetpost.test\r\nTo: x@contract.test\r\nSubject: contract "
        + base64.b16encode(",".join(rcpts).encode())
        + b"\r\nMessage-ID: <c@jetpost.test>\r\n\r\nbody line\r\n"
    )
    return Mail(data=data, sender="a@jetpost.test", recipients=rcpts)


def sink_received(sink: PickySink) -> Callable[[], list[tuple[tuple[str, ...], bytes]]]:
    return lambda: [(m.rcpt_tos, m.data) for m in sink.received]


def http_received(server: JsonHttpServer, kind: str) -> list[tuple[tuple[str, ...], bytes]]:
    """What the peer took: the recipients it did not refuse, and the message."""
    got = []
    for _, _, body in server.requests:
        request = json.loads(body)
        if kind == "kumomta":
            rcpts = [r["email"] for r in request["recipients"]]
            data = request["content"]
        else:
            rcpts, data = request["rcpt_to"], request["data"]
        taken = tuple(r for r in rcpts if not r.endswith("@refused.test"))
        if taken:
            got.append((taken, data.encode()))
    return got


@pytest.fixture(params=KINDS)
async def backend(
    request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture
) -> AsyncIterator[Backend]:
    kind: str = request.param
    closers: list[Callable[[], Any]] = []
    if kind in ("smtp", "capture", "mx"):
        sink = PickySink(None)
        port = await sink.start()
        closers.append(sink.stop)
        if kind == "smtp":
            mailer: Mailer = SmtpMailer(SmtpTarget(host="127.0.0.1", port=port), 2, 5)
        elif kind == "capture":
            target = SmtpTarget(host="127.0.0.1", port=port)
            mailer = build_router(Settings(provider="smtp", smtp_url=None), target)
        else:
            dns = DnsResponder({
                ("contract.test", "MX"): ["10 mx.contract.test."],
                ("refused.test", "MX"): ["10 mx.contract.test."],
                ("mx.contract.test", "A"): ["127.0.0.1"],
            })  # fmt: skip
            await dns.start()
            closers.append(dns.stop)
            mailer = MxMailer(MxResolver(dns.address, 2), port=port, pool_size=2, timeout=5)
        backend = Backend(mailer, sink_received(sink), sink.stop,
                          counts_against_provider=kind != "mx")  # fmt: skip
    elif kind in ("kumomta", "http_json"):
        server = JsonHttpServer(kumomta_inject if kind == "kumomta" else json_webhook)
        port = await server.start()
        closers.append(server.stop)
        if kind == "kumomta":
            mailer = KumoMailer(f"kumomta+http://127.0.0.1:{port}", timeout=5, pool_size=2)
        else:
            mailer = HttpJsonMailer(f"http+json://127.0.0.1:{port}/mail", timeout=5, pool_size=2)
        backend = Backend(mailer, lambda: http_received(server, kind), server.stop)
    else:
        logger = logging.getLogger("jetpost.mail.contract")
        mailer = LogMailer(logger)
        caplog.set_level(logging.INFO, logger="jetpost.mail.contract")

        def logged() -> list[tuple[tuple[str, ...], bytes]]:
            return [((), r.getMessage().encode()) for r in caplog.records if r.name == logger.name]

        backend = Backend(mailer, logged, lambda: None, refuses=False)
    await backend.mailer.start()
    yield backend
    await backend.mailer.close()
    for close in reversed(closers):
        await close()


class TestProviderContract:
    async def test_delivers_the_exact_bytes_once(self, backend: Backend) -> None:
        mail = make_mail("x@contract.test")
        outcome = await backend.mailer.send(mail)
        assert (outcome.kind, outcome.connection) == ("delivered", False)
        [(rcpts, data)] = backend.received()
        if backend.refuses:
            assert rcpts == ("x@contract.test",)
            assert data == mail.data
        else:
            assert b"Subject: contract" in data and b"body line" in data

    async def test_a_refused_recipient_is_not_a_provider_failure(self, backend: Backend) -> None:
        if not backend.refuses:
            pytest.skip("this provider takes every recipient")
        alone = await backend.mailer.send(make_mail("nobody@refused.test"))
        assert (alone.kind, alone.connection) == ("bounced", False)
        mixed = await backend.mailer.send(make_mail("x@contract.test", "nobody@refused.test"))
        assert (mixed.kind, mixed.connection) == ("delivered", False)
        [(rcpts, _)] = backend.received()
        assert rcpts == ("x@contract.test",)

    async def test_an_unreachable_peer_is_deferred(self, backend: Backend) -> None:
        if not backend.refuses:
            pytest.skip("the log cannot be unreachable")
        await backend.stop_peer()
        outcome = await backend.mailer.send(make_mail("x@contract.test"))
        assert outcome.kind == "deferred"
        assert outcome.connection is backend.counts_against_provider
        assert backend.received() == []

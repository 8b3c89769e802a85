"""mx:// against a local DNS responder (dnspython's message API, UDP and TCP) and
aiosmtpd MX hosts, each on its own loopback address with the same port (the way
JETPOST_MX_PORT points every MX at one port): preference order and MX failover past
a refusing, a 421 and a hanging host; no MX -> A; null MX and NXDOMAIN bounce at once;
one transaction per domain; a drop during DATA is not sent again in the attempt."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from nats.js import JetStreamContext

from services.capture import CaptureSink
from services.sender.dns_lookup import MxResolver
from services.sender.mailer import Mail
from services.sender.mx import MxMailer
from services.sender.throttle import THROTTLE_BUCKET, Lease, Throttle
from services.sender.throttle_rules import parse_limits
from tests.delivery_peers import AnsweringSink, DnsResponder, DroppingSink, HangingServer
from tests.delivery_peers import refusing_port as free_port


@dataclass
class World:
    dns: DnsResponder
    good: CaptureSink
    busy: AnsweringSink
    dropping: DroppingSink
    hanging: HangingServer
    mailer: MxMailer


ZONE = {
    # preference order: refusing (.2), 421 (.3), hanging (.5), then the good host (.4)
    ("pref.test", "MX"): [
        "10 mx1.pref.test.",
        "20 mx2.pref.test.",
        "25 mx5.pref.test.",
        "30 mx3.pref.test.",
    ],
    ("mx1.pref.test", "A"): ["127.0.0.2"],
    ("mx2.pref.test", "A"): ["127.0.0.3"],
    ("mx5.pref.test", "A"): ["127.0.0.5"],
    ("mx3.pref.test", "A"): ["127.0.0.4"],
    ("good.test", "MX"): ["10 mx3.pref.test."],
    ("other.test", "MX"): ["5 mx3.pref.test."],
    ("amx.test", "A"): ["127.0.0.4"],  # no MX: the domain's own address
    ("null.test", "MX"): ["0 ."],  # RFC 7505
    ("drop.test", "MX"): ["10 mx6.drop.test.", "20 mx3.pref.test."],
    ("mx6.drop.test", "A"): ["127.0.0.6"],
}


@pytest.fixture
async def world() -> AsyncIterator[World]:
    port = free_port()
    dns = DnsResponder(ZONE)
    await dns.start()
    good = CaptureSink(None, host="127.0.0.4", port=port)
    busy = AnsweringSink("421 4.7.0 try again later", host="127.0.0.3", port=port)
    dropping = DroppingSink(host="127.0.0.6", port=port)
    hanging = HangingServer(host="127.0.0.5", port=port)
    for peer in (good, busy, dropping, hanging):
        await peer.start()
    mailer = MxMailer(MxResolver(dns.address, 2), port=port, pool_size=2, timeout=1.0)
    yield World(dns, good, busy, dropping, hanging, mailer)
    await mailer.close()
    for peer in (good, busy, dropping, hanging):
        await peer.stop()
    await dns.stop()


def mail(*rcpts: str) -> Mail:
    return Mail(b"Subject: mx\r\n\r\nhello\r\n", "a@jetpost.test", rcpts)


async def test_mx_hosts_by_preference_past_broken_ones(world: World) -> None:
    outcome = await world.mailer.send(mail("x@pref.test"))
    assert (outcome.kind, outcome.host) == ("delivered", "mx3.pref.test")
    assert [m.rcpt_tos for m in world.good.received] == [("x@pref.test",)]
    assert world.busy.attempts == 1 and world.hanging.connections == 1


async def test_no_mx_falls_back_to_the_address(world: World) -> None:
    outcome = await world.mailer.send(mail("x@amx.test"))
    assert (outcome.kind, outcome.host) == ("delivered", "amx.test")
    assert len(world.good.received) == 1


@pytest.mark.parametrize("domain", ["null.test", "nowhere.test"])
async def test_null_mx_and_nxdomain_bounce_at_once(world: World, domain: str) -> None:
    outcome = await world.mailer.send(mail(f"x@{domain}"))
    assert (outcome.kind, outcome.connection) == ("bounced", False)
    assert "5.1.2" in outcome.response
    assert world.good.connections == 0


async def test_one_transaction_per_domain_with_all_its_recipients(world: World) -> None:
    outcome = await world.mailer.send(mail("a@good.test", "b@good.test", "c@other.test"))
    assert outcome.kind == "delivered"
    got = sorted(m.rcpt_tos for m in await world.good.wait_for(2, timeout=5))
    assert got == [("a@good.test", "b@good.test"), ("c@other.test",)]
    assert world.good.attempts == 2


async def test_a_drop_during_data_is_not_sent_again_in_the_attempt(world: World) -> None:
    outcome = await world.mailer.send(mail("x@drop.test"))
    assert (outcome.kind, outcome.uncertain, outcome.host) == ("deferred", True, "mx6.drop.test")
    assert world.dropping.dropped == 1
    assert world.good.received == []  # the next MX host did not get a second copy


async def test_mx_hosts_are_throttle_keys_shared_by_their_domains(
    world: World, js: JetStreamContext
) -> None:
    keys = await world.mailer.throttle_keys(("a@good.test", "b@other.test", "c@null.test"))
    assert keys == ["mx=mx3.pref.test", "mx=mx3.pref.test"]  # null.test: no route, no key
    limits = parse_limits({"mx:*.pref.test": {"concurrency": 1}}, "test")
    throttle = Throttle(await js.key_value(THROTTLE_BUCKET), limits, slow_for=60)
    held = await throttle.acquire(["good.test", "mx=mx3.pref.test"])
    assert isinstance(held, Lease)
    # another domain, the same MX host: over the host's limit
    assert isinstance(await throttle.acquire(["other.test", "mx=mx3.pref.test"]), float)
    await throttle.release(held)
    assert isinstance(await throttle.acquire(["other.test", "mx=mx3.pref.test"]), Lease)

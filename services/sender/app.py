"""Composition of the sender service: the mailer (pooled SMTP or log) and its subscriber."""

from __future__ import annotations

from faststream.nats import NatsBroker
from nats.js import JetStreamContext

from services.component import Env, Service, register_service
from services.sender.handlers import Sender
from services.sender.providers import build_mailer


def register(broker: NatsBroker, env: Env) -> Service:
    mailer = build_mailer(env.settings)

    async def build(js: JetStreamContext) -> Sender:
        await mailer.start()
        return Sender(js, mailer, env.settings)

    # FastStream works a fetched batch at once and fetches again when all are done: a
    # batch of several mails per connection keeps the pool busy. A message may wait
    # for a connection: batch / pool * smtp_timeout must stay under the ack_wait.
    batch = 8 * env.settings.smtp_pool_size
    return register_service(broker, env, "sender", build, batch=batch, closer=mailer.close)

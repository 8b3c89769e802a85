"""Composition of the sender service: providers behind the failover router, the DKIM
signer, the shared throttle (NATS KV) and operations events; then its subscriber."""

from __future__ import annotations

from faststream.nats import NatsBroker
from nats.js import JetStreamContext

from services.component import Env, Service, register_service
from services.sender.dkim_sign import DkimSigner
from services.sender.handlers import Sender
from services.sender.ops import OpsPublisher
from services.sender.registry import build_router
from services.sender.throttle import THROTTLE_BUCKET, Throttle
from services.sender.throttle_rules import load_limits


def register(broker: NatsBroker, env: Env) -> Service:
    settings = env.settings
    router = build_router(settings)
    signer = DkimSigner(settings.dkim_key_dir, required=settings.dkim_required)
    limits = load_limits(settings.throttles)

    async def build(js: JetStreamContext) -> Sender:
        ops = OpsPublisher(js)
        router.on_change = ops.circuit
        await router.start()
        kv = await js.key_value(THROTTLE_BUCKET)
        throttle = Throttle(kv, limits, slow_for=settings.throttle_slow_for)
        return Sender(js, router, settings, signer=signer, throttle=throttle, ops=ops)

    # FastStream works a fetched batch at once and fetches again when all are done: a
    # batch of several mails per connection keeps the pool busy. A message may wait
    # for a connection: batch / pool * smtp_timeout must stay under the ack_wait.
    batch = 8 * settings.smtp_pool_size
    return register_service(broker, env, "sender", build, batch=batch, closer=router.close)

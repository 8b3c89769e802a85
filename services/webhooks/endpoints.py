"""A customer's webhook endpoint as a pure fold over its events, used alike by the
delivery service (reconciling consumers), the `webhook_endpoints` read model and the
CLI, so all three agree. No I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime

from shared.events import (
    Event,
    WebhookEndpointCreated,
    WebhookEndpointDeleted,
    WebhookEndpointDisabled,
    WebhookEndpointUpdated,
    WebhookReplayFinished,
    WebhookReplayRequested,
    WebhookSecretRotated,
)
from shared.subjects import event_filter

EndpointEvent = (
    WebhookEndpointCreated | WebhookEndpointUpdated | WebhookEndpointDeleted
    | WebhookSecretRotated | WebhookEndpointDisabled | WebhookReplayRequested
    | WebhookReplayFinished
)  # fmt: skip
ENDPOINT_EVENTS: tuple[str, ...] = (
    "webhook_endpoint_created", "webhook_endpoint_updated", "webhook_endpoint_deleted",
    "webhook_secret_rotated", "webhook_endpoint_disabled", "webhook_replay_requested",
    "webhook_replay_finished",
)  # fmt: skip
ENDPOINT_FILTERS = [event_filter(t) for t in ENDPOINT_EVENTS]


@dataclass(frozen=True)
class Secret:
    """An encrypted signing secret; None: signs until it is rotated, plus the grace."""

    sealed: str
    valid_until: datetime | None = None


@dataclass(frozen=True)
class Replay:
    replay_id: str
    until_seq: int
    requested_seq: int  # where it was asked for: numbers its `webhook_replay_finished`
    start_seq: int | None = None
    since: datetime | None = None


@dataclass(frozen=True)
class Endpoint:
    id: str
    url: str
    events: tuple[str, ...]
    description: str
    enabled: bool
    secrets: tuple[Secret, ...]
    created_at: datetime
    updated_at: datetime
    start_seq: int  # the first MAIL_EVT sequence it hears about: right after its creation
    disabled_reason: str | None = None
    command_seq: int = 0  # the last command applied: an older one appended late is ignored
    replays: tuple[Replay, ...] = field(default=())

    def signing_secrets(self, now: datetime) -> tuple[str, ...]:
        return tuple(s.sealed for s in self.secrets if s.valid_until is None or s.valid_until > now)


def _newer(endpoint: Endpoint, command_seq: int | None) -> bool:
    return command_seq is None or command_seq >= endpoint.command_seq


def step(endpoint: Endpoint | None, event: Event, seq: int) -> Endpoint | None:
    """The endpoint after one of its events (None: it does not exist, or no longer)."""
    at = event.occurred_at
    if isinstance(event, WebhookEndpointCreated):
        if endpoint is not None:
            return endpoint  # created once
        return Endpoint(
            id=event.message_id, url=event.url, events=event.events,
            description=event.description, enabled=event.enabled,
            secrets=(Secret(event.secret),), created_at=at, updated_at=at,
            start_seq=seq + 1, command_seq=event.command_seq or 0,
        )  # fmt: skip
    if endpoint is None:
        return None
    match event:
        case WebhookEndpointUpdated() if _newer(endpoint, event.command_seq):
            enabled = endpoint.enabled if event.enabled is None else event.enabled
            return replace(
                endpoint, url=event.url or endpoint.url, events=event.events or endpoint.events,
                description=endpoint.description if event.description is None
                else event.description,
                enabled=enabled, disabled_reason=endpoint.disabled_reason if not enabled else None,
                updated_at=at, command_seq=event.command_seq or endpoint.command_seq,
            )  # fmt: skip
        case WebhookEndpointDeleted():
            return None
        case WebhookSecretRotated():
            grace = event.previous_valid_until
            kept = tuple(
                replace(s, valid_until=grace) if s.valid_until is None else s
                for s in endpoint.secrets if s.valid_until is None or s.valid_until > at
            )  # fmt: skip
            return replace(endpoint, secrets=(Secret(event.secret), *kept), updated_at=at)
        case WebhookEndpointDisabled():
            return replace(endpoint, enabled=False, disabled_reason=event.reason, updated_at=at)
        case WebhookReplayRequested():
            replay = Replay(event.replay_id, event.until_seq, seq, event.start_seq, event.since)
            return replace(endpoint, replays=(*endpoint.replays, replay))
        case WebhookReplayFinished():
            left = tuple(r for r in endpoint.replays if r.replay_id != event.replay_id)
            return replace(endpoint, replays=left)
    return endpoint


def fold_all(
    items: list[tuple[int, Event]], endpoints: dict[str, Endpoint] | None = None
) -> dict[str, Endpoint]:
    """Every endpoint after these (sequence, event) pairs, in log order."""
    state = dict(endpoints or {})
    for seq, event in items:
        after = step(state.get(event.message_id), event, seq)
        if after is None:
            state.pop(event.message_id, None)
        else:
            state[event.message_id] = after
    return state

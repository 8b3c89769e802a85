"""Stream names and subject builders: the one place that spells NATS subjects."""

import hashlib
import re

CMD_STREAM = "MAIL_CMD"
EVT_STREAM = "MAIL_EVT"

CMD_SEND = "mail.cmd.send"
CMD_SEND_BATCH = "mail.cmd.send_batch"
CMD_RESEND = "mail.cmd.resend"
CMD_SUPPRESS = "mail.cmd.suppress"
CMD_UNSUPPRESS = "mail.cmd.unsuppress"
# Changes to the customer's webhook endpoints (services/webhooks): intake records them.
CMD_WEBHOOK_CREATE = "mail.cmd.webhook_create"
CMD_WEBHOOK_UPDATE = "mail.cmd.webhook_update"
CMD_WEBHOOK_DELETE = "mail.cmd.webhook_delete"
CMD_WEBHOOK_ROTATE = "mail.cmd.webhook_rotate"
CMD_WEBHOOK_REPLAY = "mail.cmd.webhook_replay"

EVT_PREFIX = "mail.evt"

IDEMPOTENCY_BUCKET = "mail_idempotency"
SUPPRESSION_BUCKET = "mail_suppressions"
SOFT_BOUNCE_BUCKET = "mail_soft_bounces"

# A message id is one subject token: letters, digits, '-' and '_' only.
MESSAGE_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,128}$")


def suppression_aggregate(address: str, scope: str = "") -> str:
    """The aggregate id of an address's suppression entry: events about an address,
    not a message, still get one subject family (`mail.evt.sup-<hash>.*`)."""
    digest = hashlib.sha256(f"{address.lower()}|{scope}".encode()).hexdigest()[:32]
    return f"sup-{digest}"


def event_subject(message_id: str, event_type: str) -> str:
    return f"{EVT_PREFIX}.{message_id}.{event_type}"


def event_filter(event_type: str) -> str:
    """All events of one type, across messages."""
    return f"{EVT_PREFIX}.*.{event_type}"


def message_filter(message_id: str) -> str:
    """The whole history of one message."""
    return f"{EVT_PREFIX}.{message_id}.*"


def event_msg_id(message_id: str, event_type: str, n: int = 1) -> str:
    """Deterministic Nats-Msg-Id, so a retried append is deduplicated by the stream."""
    return f"{message_id}:{event_type}:{n}"

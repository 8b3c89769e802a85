"""Configuration from JETPOST_* environment variables, validated once at start-up.

Nothing reads the environment at import time: the composition root calls
`load_settings()` and passes the result down.
"""

from __future__ import annotations

import re
from datetime import timedelta
from email.utils import parseaddr
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlsplit

from pydantic import (
    BaseModel,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.mailbox import parse_mailbox
from shared.paths import MIGRATIONS_DIR, NATS_DIR, TEMPLATES_DIR
from shared.suppression_rules import Rules


class SmtpTarget(BaseModel):
    """A parsed `smtp://user:password@host:port` (or `smtps://`) URL."""

    model_config = {"frozen": True}

    host: str
    port: int
    use_tls: bool = False
    start_tls: bool | None = None
    username: str | None = None
    password: str | None = None

    @classmethod
    def parse(cls, url: str) -> SmtpTarget:
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ValueError("expected smtp://[user:password@]host[:port] or smtps://...")
        tls = parts.scheme == "smtps"
        return cls(
            host=parts.hostname,
            port=parts.port or (465 if tls else 25),
            use_tls=tls,
            # plain smtp:// upgrades with STARTTLS only when the server offers it
            start_tls=False if tls else None,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
        )


_HOST_LABEL = r"(?:\*|[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)"
_HOST_PATTERN_RE = re.compile(rf"^{_HOST_LABEL}(?:\.{_HOST_LABEL})+$")  # sns.*.amazonaws.com
_CHANNEL_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_TEMPLATE_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]*$")  # a catalog folder name


def parse_template_map(raw: str) -> dict[str, str]:
    """`activation=welcome,reset=password_reset` -> {action: template}."""
    mapping: dict[str, str] = {}
    for pair in filter(None, (p.strip() for p in raw.split(","))):
        action, sep, template = (part.strip() for part in pair.partition("="))
        if not sep or not action or not _TEMPLATE_NAME_RE.match(template):
            raise ValueError(f"expected action=template pairs separated by commas, got {pair!r}")
        if action in mapping:
            raise ValueError(f"action {action!r} is mapped twice")
        mapping[action] = template
    return mapping


NATS_SCHEMES = ("nats", "tls", "ws", "wss")


def parse_nats_servers(raw: str) -> list[str]:
    """JETPOST_NATS_URL: `nats://a:4222,nats://b:4222` (or one URL) -> the server list."""
    servers = [s.strip() for s in raw.split(",") if s.strip()]
    if not servers:
        raise ValueError("expected one or more comma-separated nats:// URLs")
    for server in servers:
        parts = urlsplit(server)
        try:
            parts.port  # noqa: B018 - raises on a bad port
        except ValueError:
            raise ValueError(f"bad port in {redact_url(server)!r}") from None
        if parts.scheme not in NATS_SCHEMES or not parts.hostname:
            raise ValueError(
                f"expected nats://host:port (or tls://, ws://, wss://), got {redact_url(server)!r}"
            )
    return servers


def parse_delays(raw: str) -> tuple[float, ...]:
    """`5,300,1800` -> (5.0, 300.0, 1800.0): a retry schedule in seconds."""
    try:
        delays = tuple(float(part) for part in raw.split(",") if part.strip())
    except ValueError:
        raise ValueError(f"expected seconds separated by commas, got {raw!r}") from None
    if any(d < 0 for d in delays):
        raise ValueError("delays are 0 or more seconds")
    return delays


MIN_TOKEN_KEY_LENGTH = 16

# scheme -> the provider's kind (its default name)
PROVIDER_SCHEMES = {"smtp": "smtp", "smtps": "smtp", "mx": "mx", "kumomta+http": "kumomta",
                    "kumomta+https": "kumomta", "http+json": "http", "https+json": "http",
                    "log": "log"}  # fmt: skip
_PROVIDER_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,32}$")


def parse_providers(raw: str) -> list[tuple[str, str]]:
    """JETPOST_PROVIDERS: provider URLs separated by commas, highest priority first;
    `#name` at the end of a URL names it (default: its kind, numbered when repeated).
    Returns [(name, url)]."""
    urls = [u.strip() for u in raw.split(",") if u.strip()]
    kinds = [PROVIDER_SCHEMES.get(urlsplit(u).scheme, "?") for u in urls]
    named: list[tuple[str, str]] = []
    for i, (url, kind) in enumerate(zip(urls, kinds, strict=True)):
        base, _, name = url.partition("#")
        parts = urlsplit(base)
        if parts.scheme not in PROVIDER_SCHEMES:
            raise ValueError(f"{redact_url(base)}: expected one of {', '.join(PROVIDER_SCHEMES)}")
        if parts.scheme in ("smtp", "smtps"):
            SmtpTarget.parse(base)
        elif parts.scheme not in ("mx", "log") and not parts.hostname:
            raise ValueError(f"{redact_url(base)}: a host is required")
        if not name:
            name = kind if kinds.count(kind) == 1 else f"{kind}{kinds[: i + 1].count(kind)}"
        if not _PROVIDER_NAME_RE.match(name):
            raise ValueError(f"provider name {name!r}: letters, digits, '-' and '_' only")
        named.append((name, base))
    names = [n for n, _ in named]
    if len(set(names)) != len(names):
        raise ValueError(f"provider names repeat: {', '.join(names)}")
    return named


def parse_token_keys(raw: str) -> list[str]:
    """JETPOST_TOKEN_KEYS: comma-separated secrets, the signing key first."""
    keys = [k.strip() for k in raw.split(",") if k.strip()]
    if not keys:
        raise ValueError("expected one or more comma-separated secrets")
    if any(len(k.encode()) < MIN_TOKEN_KEY_LENGTH for k in keys):
        raise ValueError(f"every key is at least {MIN_TOKEN_KEY_LENGTH} characters")
    return keys


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="JETPOST_", extra="ignore", populate_by_name=True)

    nats_url: str | None = None  # one URL or a comma-separated list (a cluster's nodes)
    nats_port: int = Field(default=4222, ge=0, le=65535)
    # Go threads of the embedded nats-server (shared.embedded.go_procs); 0: half the CPUs
    nats_procs: int = Field(default=0, ge=0, le=1024)
    # A NATS cluster (shared/nats_connect.py, shared/nats_setup.py): replicas of every
    # stream, consumer and bucket; how long to wait for any server before giving up;
    # auth (a creds file, an NKEY seed file, or user and password) and TLS.
    nats_replicas: int = Field(default=1, ge=1, le=5)
    nats_connect_timeout: float = Field(default=15.0, gt=0, le=3600)
    nats_creds: Path | None = None
    nats_nkey_seed: Path | None = None
    nats_user: str | None = None
    nats_password: SecretStr | None = None
    nats_tls_ca: Path | None = None
    nats_tls_cert: Path | None = None
    nats_tls_key: Path | None = None
    database_url: str | None = None
    data_dir: Path = Path(".jetpost")
    template_dir: Path = TEMPLATES_DIR
    nats_dir: Path = NATS_DIR
    migrations_dir: Path = MIGRATIONS_DIR
    smtp_url: str | None = None
    smtp_pool_size: int = Field(default=8, ge=1, le=256)
    smtp_timeout: float = Field(default=30.0, gt=0)
    capture_port: int = Field(default=2525, ge=0, le=65535)
    capture_host: str = "127.0.0.1"
    # The feedback receiver (`jetpost run feedback`): SMTP for bounces and complaints.
    bounce_host: str = Field(default="127.0.0.1", min_length=1)
    bounce_port: int = Field(default=2526, ge=0, le=65535)
    bounce_domain: str | None = None  # VERP domain; default: the mail domain
    sender_from: str = Field(default="jetpost <noreply@example.com>", alias="JETPOST_FROM")
    message_id_domain: str | None = None
    provider: Literal["smtp", "log"] = "smtp"
    # The delivery engine (services/sender): provider URLs, highest priority first
    # (JETPOST_SMTP_URL alone is a one-item list); circuit breakers; throttles; DKIM.
    providers: str = ""
    dns_resolver: str | None = None  # host:port of the DNS server mx:// asks
    mx_port: int = Field(default=25, ge=1, le=65535)
    circuit_failures: int = Field(default=5, ge=1, le=1000)  # within circuit_window opens it
    circuit_window: float = Field(default=30.0, gt=0)
    circuit_cooldown: float = Field(default=30.0, gt=0)  # open, then one probe (half-open)
    throttles: Path | None = None  # a YAML file of per-domain limits over the shipped ones
    throttle_slow_for: float = Field(default=300.0, gt=0)  # a "slow down" halves a rate this long
    dkim_dir: Path | None = None  # default <data_dir>/dkim
    dkim_required: bool = False
    # Retry schedule for deferred mail: delay before attempt n+1 is
    # min(retry_base * 2**(n-1), retry_max); after max_attempts it fails.
    retry_base: float = Field(default=30.0, gt=0)
    retry_max: float = Field(default=3600.0, gt=0)
    max_attempts: int = Field(default=8, ge=1, le=100)
    idempotency_ttl: float = Field(default=86400.0, gt=120)
    # How far ahead `send_at` may be (seconds): 30 days.
    max_schedule: float = Field(default=30 * 86400.0, gt=0)
    # html + text + vars of one send: its rendered mail holds them about twice and must
    # fit NATS's max payload (1 MB by default). Larger sends are refused up front.
    max_content_bytes: int = Field(default=400_000, ge=1024)
    # Bulk mail joins the renderer's and sender's queues only while fewer than this
    # many events wait there (shared.lanes): what transactional mail can wait behind.
    lane_depth: int = Field(default=32, ge=1)
    # Attachments: how many per message, their total size, and file types refused.
    max_attachments: int = Field(default=10, ge=0, le=100)
    max_attachment_bytes: int = Field(default=10_000_000, ge=1024)
    blocked_extensions: str = (
        "ade,adp,app,bat,chm,cmd,com,cpl,exe,hta,ins,isp,jar,js,jse,lib,lnk,mde,msc,msi,"
        "msp,mst,pif,ps1,reg,scr,sct,shb,sys,vb,vbe,vbs,vxd,wsc,wsf,wsh"
    )

    @property
    def blocked(self) -> frozenset[str]:
        return frozenset(e.strip().lower().lstrip(".") for e in self.blocked_extensions.split(",")
                         if e.strip())  # fmt: skip

    # Overrides every consumer's ack_wait (nats/jetstream.yaml): how long a crashed
    # worker's unacked messages wait before another worker gets them.
    ack_wait: float | None = Field(default=None, gt=0)
    cmd_max_age: float | None = Field(default=None, ge=0)
    evt_max_age: float | None = Field(default=None, ge=0)
    fetch_batch: int = Field(default=64, ge=1, le=1024)
    log_level: str = "INFO"
    # The HTTP API (`jetpost run api`, and `jetpost dev`).
    api_host: str = Field(default="127.0.0.1", min_length=1)
    api_port: int = Field(default=8025, ge=0, le=65535)
    api_timeout: float = Field(default=5.0, gt=0, le=60)  # NATS publish / Postgres wait
    api_pool_size: int = Field(default=10, ge=1, le=200)
    api_workers: int = Field(default=1, ge=1, le=64)  # `jetpost run api` processes
    # processes the pipeline services of `jetpost run`/`dev` run in (services.cli.pipeline_workers)
    pipeline_workers: int = Field(default=1, ge=1, le=64)
    api_key_cache_ttl: float = Field(default=10.0, ge=0, le=3600)  # while LISTEN is down
    # /readyz fails while a projection is more than this many events behind MAIL_EVT.
    ready_max_lag: int = Field(default=1000, ge=0)
    # Hardening of the API's edges (services/api/ratelimit.py): request bodies larger
    # than NATS takes in one message are refused before they are read; failed key
    # lookups are remembered briefly and limited per client address; tracking hits
    # record one event per token and window, and are limited per token and address.
    api_max_body: int = Field(default=1024 * 1024, ge=1024)  # NATS' default max_payload
    api_key_miss_ttl: float = Field(default=5.0, ge=0, le=3600)
    api_auth_fail_rate: float = Field(default=30.0, ge=0)  # failed keys per minute per client
    track_window: float = Field(default=3600.0, gt=0)  # one opened/clicked event per window
    track_rate: float = Field(default=60.0, ge=0)  # hits per minute, per client address
    track_token_rate: float = Field(default=20.0, ge=0)  # hits per minute, per token
    # POST /v1/webhooks/<provider>: `generic` bodies are signed with this secret
    # (X-Jetpost-Signature: sha256=<hex HMAC-SHA256 of the body>); unset: refused.
    webhook_secret: SecretStr | None = None
    # `ses` (SES via SNS): the topics trusted (comma-separated ARNs; none: refused), the
    # hosts signing certificates may come from (`*` is one DNS label), and whether a
    # SubscriptionConfirmation is confirmed by visiting its SubscribeURL.
    sns_topic_arns: str = ""
    sns_cert_hosts: str = "sns.*.amazonaws.com"
    sns_auto_confirm: bool = False
    # Links in mail (services/renderer/tracking.py, shared/tokens.py): tracking, one-click
    # unsubscribe and signed action links point at `public_url`; `jetpost run public`
    # serves only those routes on public_host:public_port.
    public_url: str | None = None  # default http://127.0.0.1:<api_port>
    public_host: str = Field(default="127.0.0.1", min_length=1)
    public_port: int = Field(default=8026, ge=0, le=65535)
    token_keys: SecretStr | None = None  # signing key first; unset: <data_dir>/token.key
    track_opens: bool = False  # defaults for a send command without `track`
    track_clicks: bool = False
    unsubscribe_mailto: str | None = None  # adds <mailto:...> to List-Unsubscribe
    # `jetpost run pg-bridge`: mail for the rows an application inserts into
    # jetpost_outbox (sql/pg_bridge.sql) in ITS database.
    bridge_database_url: str | None = None
    bridge_channel: str = "jetpost_outbox"
    bridge_templates: str = ""  # action=template,...; an unmapped action names its template
    bridge_source: str | None = None  # names the database in message ids; default its name
    bridge_batch_size: int = Field(default=100, ge=1, le=1000)
    bridge_batch_wait: float = Field(default=0.5, ge=0, le=60)
    bridge_poll_interval: float = Field(default=10.0, gt=0, le=3600)
    # Event webhooks to the customer's endpoints (services/webhooks, `jetpost run webhooks`).
    webhook_timeout: float = Field(default=10.0, gt=0, le=300)  # one attempt, whole exchange
    webhook_allow_private: bool = False  # loopback/private targets and plain http (dev, tests)
    webhook_retry_delays: str = "5,300,1800,7200,18000,36000,36000"  # seconds; then failed
    webhook_disable_after: float = Field(default=5 * 86400.0, gt=0)  # failing, no success
    webhook_concurrency: int = Field(default=32, ge=1, le=1024)  # in flight per endpoint
    # Encrypt endpoint secrets at rest (comma-separated, 16+ characters, the first
    # encrypts); unset: a key kept in <data dir>/webhook.key.
    webhook_keys: SecretStr | None = None

    @field_validator("webhook_retry_delays")
    @classmethod
    def _webhook_retry_delays(cls, value: str) -> str:
        parse_delays(value)
        return value

    @property
    def webhook_delays(self) -> tuple[float, ...]:
        return parse_delays(self.webhook_retry_delays)

    @field_validator("nats_url")
    @classmethod
    def _nats_url(cls, value: str | None) -> str | None:
        if value:
            parse_nats_servers(value)
        return value or None

    @field_validator("nats_creds", "nats_nkey_seed", "nats_tls_ca", "nats_tls_cert",
                     "nats_tls_key")  # fmt: skip
    @classmethod
    def _nats_file(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"no such file: {value}")
        return value

    @model_validator(mode="after")
    def _nats_auth(self) -> Settings:
        if (self.nats_tls_cert is None) != (self.nats_tls_key is None):
            raise ValueError("JETPOST_NATS_TLS_CERT and JETPOST_NATS_TLS_KEY go together")
        ways = [self.nats_creds, self.nats_nkey_seed, self.nats_user]
        if sum(way is not None for way in ways) > 1:
            raise ValueError(
                "JETPOST_NATS_CREDS, JETPOST_NATS_NKEY_SEED, JETPOST_NATS_USER: set one of them"
            )
        return self

    # Observability (shared/telemetry): spans printed for dev (OTLP export is set by the
    # standard OTEL_* variables); /metrics of this process on metrics_host:metrics_port
    # (unset: only the API's /metrics), gauges polled every metrics_interval seconds.
    trace_console: bool = False
    metrics_host: str = Field(default="127.0.0.1", min_length=1)
    metrics_port: int | None = Field(default=None, ge=0, le=65535)
    metrics_interval: float = Field(default=5.0, gt=0, le=3600)
    # Retention of the read models and captured mail (projections/retention.py): rows
    # and files older than retention_days go, checked every retention_interval seconds.
    retention_days: float | None = Field(default=None, gt=0)
    retention_interval: float = Field(default=3600.0, gt=0)
    retention_batch: int = Field(default=500, ge=1, le=100_000)

    @model_validator(mode="after")
    def _retention_outlives_schedule(self) -> Settings:
        """Attachments age out of their bucket after retention_days: a mail scheduled as
        far ahead as allowed must find its attachments when it is released."""
        if self.retention_days and self.retention_days * 86400 <= self.max_schedule:
            raise ValueError(
                f"JETPOST_RETENTION_DAYS ({self.retention_days:g} days) must exceed "
                f"JETPOST_MAX_SCHEDULE ({self.max_schedule / 86400:g} days): a scheduled "
                "mail's attachments must still exist when it is released"
            )
        return self

    @field_validator("smtp_url")
    @classmethod
    def _smtp_url(cls, value: str | None) -> str | None:
        if value:
            SmtpTarget.parse(value)
        return value or None

    @field_validator("providers")
    @classmethod
    def _providers(cls, value: str) -> str:
        parse_providers(value)
        return value

    @field_validator("throttles")
    @classmethod
    def _throttles(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"no such file: {value}")
        return value

    @property
    def provider_list(self) -> list[tuple[str, str]]:
        """[(name, url)] in priority order; [] means the capture sink (or `log`)."""
        if self.providers:
            return parse_providers(self.providers)
        if self.provider == "log":
            return [("log", "log://")]
        return [("smtp", self.smtp_url)] if self.smtp_url else []

    @property
    def dkim_key_dir(self) -> Path:
        return self.dkim_dir or self.data_dir / "dkim"

    @field_validator("bounce_domain")
    @classmethod
    def _bounce_domain(cls, value: str | None) -> str | None:
        if value and not re.fullmatch(r"[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?", value):
            raise ValueError("expected a domain name, like bounces.example.com")
        return value.lower() if value else None

    @field_validator("bridge_channel")
    @classmethod
    def _bridge_channel(cls, value: str) -> str:
        if not _CHANNEL_RE.match(value):
            raise ValueError("a channel is 1-63 letters, digits or '_', not starting with a digit")
        return value

    @field_validator("bridge_templates")
    @classmethod
    def _bridge_templates(cls, value: str) -> str:
        parse_template_map(value)
        return value

    @field_validator("bridge_source")
    @classmethod
    def _bridge_source(cls, value: str | None) -> str | None:
        if value is not None and not 1 <= len(value) <= 128:
            raise ValueError("1-128 characters")
        return value or None

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str | None) -> str | None:
        if not value:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.query:
            raise ValueError(
                "expected an http(s) URL without a query, like https://mail.example.com"
            )
        return value.rstrip("/")

    @field_validator("token_keys")
    @classmethod
    def _token_keys(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        parse_token_keys(value.get_secret_value())
        return value

    @field_validator("unsubscribe_mailto")
    @classmethod
    def _unsubscribe_mailto(cls, value: str | None) -> str | None:
        if not value:
            return None
        return parse_mailbox(value.removeprefix("mailto:"), operator=True).email

    @field_validator("sns_cert_hosts")
    @classmethod
    def _sns_cert_hosts(cls, value: str) -> str:
        hosts = [h.strip().lower() for h in value.split(",") if h.strip()]
        if not hosts or not all(_HOST_PATTERN_RE.match(h) for h in hosts):
            raise ValueError("expected host names separated by commas, `*` for one label")
        return ",".join(hosts)

    @field_validator("sender_from")
    @classmethod
    def _sender(cls, value: str) -> str:
        parse_mailbox(value, operator=True)
        return value

    # Suppression rules (shared/suppression_rules.py): soft bounces within a window
    # add up to a suppression; bounce suppressions may expire.
    soft_bounce_limit: int = Field(default=3, ge=1, le=100)
    soft_bounce_window: float = Field(default=7 * 86400.0, gt=0)
    bounce_ttl: float | None = Field(default=None, gt=0)
    suppress_complaints: bool = True

    @property
    def suppression_rules(self) -> Rules:
        return Rules(
            soft_bounce_limit=self.soft_bounce_limit,
            soft_bounce_window=timedelta(seconds=self.soft_bounce_window),
            suppress_complaints=self.suppress_complaints,
            bounce_ttl=timedelta(seconds=self.bounce_ttl) if self.bounce_ttl else None,
        )

    @property
    def public_base_url(self) -> str:
        """Where the links in mail point: JETPOST_PUBLIC_URL, else the local API."""
        return self.public_url or f"http://127.0.0.1:{self.api_port}"

    @property
    def nats_address(self) -> str:
        """Where clients connect: JETPOST_NATS_URL, else the embedded server's port."""
        return self.nats_url or f"nats://127.0.0.1:{self.nats_port}"

    @property
    def nats_servers(self) -> list[str]:
        return parse_nats_servers(self.nats_address)

    @property
    def bridge_template_map(self) -> dict[str, str]:
        return parse_template_map(self.bridge_templates)

    @property
    def sns_topics(self) -> tuple[str, ...]:
        return tuple(t.strip() for t in self.sns_topic_arns.split(",") if t.strip())

    @property
    def sns_cert_host_patterns(self) -> tuple[str, ...]:
        return tuple(h for h in self.sns_cert_hosts.split(",") if h)

    @property
    def smtp(self) -> SmtpTarget | None:
        return SmtpTarget.parse(self.smtp_url) if self.smtp_url else None

    @property
    def mail_domain(self) -> str:
        return self.message_id_domain or parseaddr(self.sender_from)[1].rpartition("@")[2]

    @property
    def feedback_domain(self) -> str:
        """Where bounces go: JETPOST_BOUNCE_DOMAIN, else the mail domain."""
        return self.bounce_domain or self.mail_domain


def redact_url(url: str) -> str:
    """A URL fit for logs and the console: any password replaced by `***` (in each URL
    of a comma-separated list)."""
    if "," in url:
        return ",".join(redact_url(part) for part in url.split(","))
    parts = urlsplit(url)
    if not parts.password:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


class ConfigError(Exception):
    """A bad JETPOST_* variable, with a one-line message naming it."""


def load_settings(**overrides: object) -> Settings:
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        if not first["loc"]:  # a check across settings: its message names them
            raise ConfigError(str(first["msg"]).removeprefix("Value error, ")) from None
        field = str(first["loc"][0])
        name = field if field.startswith("JETPOST_") else f"JETPOST_{field.upper()}"
        raise ConfigError(f"{name}: {first['msg']}") from None

"""Configuration from JETPOST_* environment variables, validated once at start-up.

Nothing reads the environment at import time: the composition root calls
`load_settings()` and passes the result down.
"""

from __future__ import annotations

import re
from email.utils import parseaddr
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlsplit

from pydantic import BaseModel, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.mailbox import parse_mailbox
from shared.paths import MIGRATIONS_DIR, NATS_DIR, TEMPLATES_DIR


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


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="JETPOST_", extra="ignore", populate_by_name=True)

    nats_url: str | None = None
    nats_port: int = Field(default=4222, ge=0, le=65535)
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
    # Retry schedule for deferred mail: delay before attempt n+1 is
    # min(retry_base * 2**(n-1), retry_max); after max_attempts it fails.
    retry_base: float = Field(default=30.0, gt=0)
    retry_max: float = Field(default=3600.0, gt=0)
    max_attempts: int = Field(default=8, ge=1, le=100)
    idempotency_ttl: float = Field(default=86400.0, gt=120)
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
    api_key_cache_ttl: float = Field(default=10.0, ge=0, le=3600)  # a revoked key works this long
    # /readyz fails while a projection is more than this many events behind MAIL_EVT.
    ready_max_lag: int = Field(default=1000, ge=0)

    @field_validator("smtp_url")
    @classmethod
    def _smtp_url(cls, value: str | None) -> str | None:
        if value:
            SmtpTarget.parse(value)
        return value or None

    @field_validator("bounce_domain")
    @classmethod
    def _bounce_domain(cls, value: str | None) -> str | None:
        if value and not re.fullmatch(r"[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?", value):
            raise ValueError("expected a domain name, like bounces.example.com")
        return value.lower() if value else None

    @field_validator("sender_from")
    @classmethod
    def _sender(cls, value: str) -> str:
        parse_mailbox(value, operator=True)
        return value

    @property
    def nats_address(self) -> str:
        """Where clients connect: JETPOST_NATS_URL, else the embedded server's port."""
        return self.nats_url or f"nats://127.0.0.1:{self.nats_port}"

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


class ConfigError(Exception):
    """A bad JETPOST_* variable, with a one-line message naming it."""


def load_settings(**overrides: object) -> Settings:
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else "?"
        name = field if field.startswith("JETPOST_") else f"JETPOST_{field.upper()}"
        raise ConfigError(f"{name}: {first['msg']}") from None

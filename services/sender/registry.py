"""Provider URLs (JETPOST_PROVIDERS, or JETPOST_SMTP_URL alone) become Mailers, one
module per kind, put behind the failover router."""

from __future__ import annotations

import logging
from collections.abc import Callable

from services.sender.dns_lookup import MxResolver
from services.sender.http_json import HttpJsonMailer
from services.sender.kumomta import KumoMailer
from services.sender.log import LogMailer
from services.sender.mailer import Mailer
from services.sender.mx import MxMailer
from services.sender.routing import Router
from services.sender.smtp import SmtpMailer
from shared.settings import ConfigError, Settings, SmtpTarget


def build_provider(name: str, url: str, settings: Settings) -> Mailer:
    scheme = url.partition("://")[0]
    pool, timeout = settings.smtp_pool_size, settings.smtp_timeout
    builders: dict[str, Callable[[], Mailer]] = {
        "smtp": lambda: SmtpMailer(SmtpTarget.parse(url), pool, timeout, name),
        "smtps": lambda: SmtpMailer(SmtpTarget.parse(url), pool, timeout, name),
        "mx": lambda: MxMailer(
            MxResolver(settings.dns_resolver, timeout),
            port=settings.mx_port,
            pool_size=pool,
            timeout=timeout,
            name=name,
        ),
        "kumomta+http": lambda: KumoMailer(url, timeout=timeout, pool_size=pool, name=name),
        "kumomta+https": lambda: KumoMailer(url, timeout=timeout, pool_size=pool, name=name),
        "http+json": lambda: HttpJsonMailer(url, timeout=timeout, pool_size=pool, name=name),
        "https+json": lambda: HttpJsonMailer(url, timeout=timeout, pool_size=pool, name=name),
        "log": lambda: LogMailer(logging.getLogger("jetpost.mail"), name),
    }
    return builders[scheme]()


def build_router(settings: Settings, capture_target: SmtpTarget | None = None) -> Router:
    """The configured providers behind one Router; `capture_target` (the dev sink)
    stands in when none is configured."""
    providers = [build_provider(name, url, settings) for name, url in settings.provider_list]
    if not providers:
        if capture_target is None:
            raise ConfigError("JETPOST_PROVIDERS or JETPOST_SMTP_URL: no provider configured")
        providers = [SmtpMailer(capture_target, settings.smtp_pool_size, settings.smtp_timeout,
                                "capture")]  # fmt: skip
    return Router(
        providers,
        threshold=settings.circuit_failures,
        window=settings.circuit_window,
        cooldown=settings.circuit_cooldown,
    )

"""The Celery peer of `bench.e2e_send --celery`: a worker that does what a typical
Celery + Redis + smtplib mail sender does for each task, the `welcome` mail of the
same shape as (a) and (b) (the issue's peer: "Celery+Redis+smtplib").

Each worker process keeps one smtplib connection to the sink (a fresh one per task
would measure TCP and EHLO, not Celery), builds the mail with the `email` package
(as `bench.raw_smtp.build_mail`, the mail of phase (a)) and sends it. No result
backend: a mail service's tasks return nothing. Configured by environment:
JETPOST_BENCH_REDIS_URL and JETPOST_BENCH_SINK_PORT.

    python -m celery -A bench.celery_app worker ...   (started by bench.celery_peer)
"""

from __future__ import annotations

import os
import smtplib

from celery import Celery

from bench.raw_smtp import build_mail

app = Celery("jetpost_bench_peer", broker=os.environ.get("JETPOST_BENCH_REDIS_URL", ""))
app.conf.update(task_ignore_result=True, worker_prefetch_multiplier=16,
                broker_connection_retry_on_startup=True)  # fmt: skip

_smtp: list[smtplib.SMTP] = []  # this worker process's connection


def _connection() -> smtplib.SMTP:
    if not _smtp:
        _smtp.append(smtplib.SMTP("127.0.0.1", int(os.environ["JETPOST_BENCH_SINK_PORT"]),
                                  timeout=30))  # fmt: skip
    return _smtp[0]


def send_welcome(i: int) -> None:
    """Build mail `i` and send it; a connection the sink closed is opened again once."""
    mail = build_mail(i)
    try:
        _connection().send_message(mail, "bench@example.com", [f"user{i}@example.com"])
    except smtplib.SMTPServerDisconnected:
        _smtp.clear()
        _connection().send_message(mail, "bench@example.com", [f"user{i}@example.com"])


SEND = app.task(name="bench.send_welcome")(send_welcome)

"""`jetpost tap`: MAIL_EVT as it happens; `jetpost inspect`: one message's timeline.

Both read the log with an ordered push consumer (ephemeral, in-memory, no acks) and
print with `services.cli.tap_format`. Every start position is turned into a stream
sequence before subscribing, and lines already printed (or before the start) are
skipped: when nats-py's ordered consumer restarts itself (after a reconnect or missed
heartbeats) it restarts from the last sequence it saw, which is 1 when it has seen
nothing yet, and it cannot restart a by-start-time consumer at all.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy
from nats.js.errors import APIError, NotFoundError
from rich.console import Console
from rich.text import Text

from services.cli.stopping import stop_on_signals
from services.cli.tap_format import EVENT_TYPES, format_line, json_line, parse_since, tap_filters
from services.cli.tap_ops import format_ops, ops_json, pump_ops, subscribe_ops
from shared.nats_connect import NatsTarget, NatsUnreachable, connect
from shared.subjects import EVT_STREAM, MESSAGE_ID_RE, message_filter
from shared.telemetry.tracing import trace_id_of

INSPECT_MSG_TIMEOUT = 10.0
CAUGHT_UP_CHECK = 0.5  # seconds without a message before asking whether the log has more


class TapError(Exception):
    """A problem to report in one line (exit status 2)."""


# --- arguments -------------------------------------------------------------------


def _positive(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {raw!r}")
    return value


def _since(raw: str) -> datetime:
    try:
        return parse_since(raw, datetime.now(UTC))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_tap_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--type",
        action="append",
        choices=EVENT_TYPES,
        metavar="TYPE",
        help="only this event type (repeatable): " + ", ".join(EVENT_TYPES),
    )
    p.add_argument("--message", metavar="ID", help="only this message's events")
    p.add_argument(
        "--subject",
        action="append",
        metavar="PATTERN",
        help="raw NATS subject filter (repeatable), e.g. 'mail.evt.*.bounced'",
    )
    start = p.add_mutually_exclusive_group()
    start.add_argument("--all", action="store_true", help="from the beginning of the log")
    start.add_argument("--seq", type=_positive, metavar="N", help="from stream sequence N")
    start.add_argument(
        "--since",
        type=_since,
        metavar="WHEN",
        help="from a time: 30s, 10m, 2h, 1d, or ISO-8601 (default: from now)",
    )
    p.add_argument("--json", action="store_true", help="one JSON object per line (for jq)")
    p.add_argument(
        "--limit",
        type=_positive,
        metavar="N",
        help="stop after N events (or, started inside the log, at its end)",
    )


def add_inspect_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("message_id", help="the id `jetpost send` printed")
    p.add_argument("--json", action="store_true", help="one JSON object per line (for jq)")


# --- commands --------------------------------------------------------------------


def tap_command(args: argparse.Namespace, nats_url: NatsTarget, console: Console) -> int:
    return _command(_tap(args, nats_url, console), console, until_stopped=True)


def inspect_command(args: argparse.Namespace, nats_url: NatsTarget, console: Console) -> int:
    return _command(_inspect(args, nats_url, console), console, until_stopped=False)


def _command(work: Coroutine[Any, Any, int], console: Console, *, until_stopped: bool) -> int:
    try:
        return asyncio.run(_until_stopped(work) if until_stopped else work)
    except TapError as exc:
        console.print(Text(f"jetpost: {exc}", style="red"), soft_wrap=True)
        return 2
    except BrokenPipeError:
        # the reader went away (`jetpost tap --json | head -3`): stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


async def _until_stopped(work: Coroutine[Any, Any, int]) -> int:
    """Run `work` until it ends or Ctrl-C / SIGTERM, which ends it cleanly (status 0)."""
    stop = stop_on_signals()
    task = asyncio.ensure_future(work)
    stopper = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    return 0 if task.cancelled() else task.result()


# --- reading ---------------------------------------------------------------------


@dataclass(frozen=True)
class Start:
    policy: DeliverPolicy
    label: str
    seq: int = 1  # the first stream sequence to print
    since: datetime | None = None  # only for a server that cannot look a time up
    in_history: bool = False  # starts at an event already in the log


Emit = Callable[[Msg], None]


class _Stdout(Console):
    def on_broken_pipe(self) -> None:
        raise BrokenPipeError  # handled in `_command` (rich's own way is SystemExit(1))


def _printer(as_json: bool) -> Emit:
    out = _Stdout(highlight=False, soft_wrap=True)

    def emit(msg: Msg) -> None:
        meta = msg.metadata
        seq = meta.sequence.stream
        ops = msg.subject.startswith("mail.ops.")
        if as_json:
            line = (ops_json if ops else json_line)(seq, msg.subject, msg.data)
            sys.stdout.write(line + "\n")
            sys.stdout.flush()
        elif ops:
            out.print(format_ops(msg.subject, msg.data, meta.timestamp))
        else:
            out.print(format_line(seq, msg.subject, msg.data, meta.timestamp))

    return emit


async def _connect(url: NatsTarget, console: Console) -> Client:
    """Connected within JETPOST_NATS_CONNECT_TIMEOUT or a TapError; later drops are
    retried forever."""
    connected = False

    async def on_error(exc: BaseException) -> None:
        if connected:
            console.print(
                Text(f"nats: {exc or type(exc).__name__}", style="yellow"), soft_wrap=True
            )

    async def on_reconnect() -> None:
        console.print(Text("nats: reconnected", style="yellow"), soft_wrap=True)

    try:
        nc = await connect(url, name="jetpost-tap", error_cb=on_error, reconnected_cb=on_reconnect)
    except NatsUnreachable as exc:
        raise TapError(f"cannot reach NATS: {exc}") from None
    connected = True
    return nc


async def _stream_last_seq(js: JetStreamContext) -> int:
    try:
        info = await js.stream_info(EVT_STREAM)
    except NotFoundError:
        raise TapError(
            f"no {EVT_STREAM} stream on this NATS: start the services or run `jetpost streams`"
        ) from None
    return int(info.state.last_seq)


async def _seq_at(nc: Client, when: datetime) -> int | None:
    """The sequence of the first event stored at or after `when`; 0 when there is none
    yet; None when the server cannot tell (nats-server before 2.11)."""
    body = json.dumps({"start_time": when.astimezone(UTC).isoformat()}).encode()
    reply = await nc.request(f"$JS.API.STREAM.MSG.GET.{EVT_STREAM}", body, timeout=5)
    answer = json.loads(reply.data)
    if "message" in answer:
        return int(answer["message"]["seq"])
    if answer.get("error", {}).get("code") == 404:
        return 0
    return None


async def _resolve_start(nc: Client, js: JetStreamContext, args: argparse.Namespace) -> Start:
    last = await _stream_last_seq(js)
    if args.all:
        return Start(DeliverPolicy.ALL, "from the beginning", in_history=True)
    if args.seq:
        return Start(DeliverPolicy.BY_START_SEQUENCE, f"from seq {args.seq}", args.seq,
                     in_history=args.seq <= last)  # fmt: skip
    if args.since:
        stamp = args.since.astimezone().strftime("%Y-%m-%d %H:%M:%S")
        seq = await _seq_at(nc, args.since)
        if seq is None:
            return Start(DeliverPolicy.BY_START_TIME, f"since {stamp}", since=args.since)
        found, seq = bool(seq), seq or last + 1
        return Start(DeliverPolicy.BY_START_SEQUENCE, f"since {stamp} (seq {seq})", seq,
                     in_history=found)  # fmt: skip
    return Start(DeliverPolicy.BY_START_SEQUENCE, f"from now (seq {last + 1})", last + 1)


async def _subscribe(
    js: JetStreamContext, filters: list[str], start: Start
) -> JetStreamContext.PushSubscription:
    config = ConsumerConfig(deliver_policy=start.policy)
    if start.policy == DeliverPolicy.BY_START_SEQUENCE:
        config.opt_start_seq = start.seq
    if start.policy == DeliverPolicy.BY_START_TIME:
        config.opt_start_time = start.since
    if len(filters) > 1:
        config.filter_subjects = filters
    try:
        return await js.subscribe(
            filters[0], stream=EVT_STREAM, ordered_consumer=True, config=config
        )
    except APIError as exc:
        raise TapError(f"cannot tap {' '.join(filters)}: {exc.description or exc}") from None


async def _pump(
    sub: JetStreamContext.PushSubscription,
    start: Start,
    limit: int | None,
    emit: Emit,
    *,
    to_end: bool = False,
) -> None:
    """Print until `limit` events; `to_end`: also stop once the log holds no more
    (a `--limit` over history must end when the history is shorter)."""
    shown = 0
    last = start.seq - 1
    while limit is None or shown < limit:
        try:
            msg = await sub.next_msg(timeout=CAUGHT_UP_CHECK if to_end else None)
        except nats.errors.TimeoutError:
            if (await sub.consumer_info()).num_pending == 0:
                return
            continue
        meta = msg.metadata
        seq = meta.sequence.stream
        # a restarted ordered consumer sends again what was printed (see module doc)
        if seq <= last or (start.since is not None and meta.timestamp < start.since):
            continue
        last = seq
        emit(msg)
        shown += 1
        if to_end and meta.num_pending == 0:
            return


async def _tap(args: argparse.Namespace, url: NatsTarget, console: Console) -> int:
    try:
        filters = tap_filters(args.type or (), args.message, args.subject or ())
    except ValueError as exc:
        raise TapError(str(exc)) from None
    emit = _printer(args.json)
    nc = await _connect(url, console)
    try:
        js = nc.jetstream()
        start = await _resolve_start(nc, js, args)
        sub = await _subscribe(js, filters, start)
        # an unfiltered tap also shows operations events (provider circuits, throttles)
        ops = None
        if filters == ["mail.evt.>"] and not args.seq:
            ops = await subscribe_ops(js, args.all, args.since)
        ops_task = asyncio.ensure_future(pump_ops(ops, emit)) if ops else None
        try:
            also = " and mail.ops.>" if ops else ""
            tapping = f"tapping {' '.join(filters)}{also} {start.label}; Ctrl-C stops"
            console.print(Text(tapping), soft_wrap=True)
            # a --limit over what the log holds ends at its end; from now, it waits
            await _pump(sub, start, args.limit, emit, to_end=start.in_history and bool(args.limit))
        finally:
            if ops_task is not None:
                ops_task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await ops_task
            for each in (sub, ops):
                if each is not None:
                    with contextlib.suppress(Exception):
                        await each.unsubscribe()
    finally:
        await nc.close()
    return 0


async def _inspect(args: argparse.Namespace, url: NatsTarget, console: Console) -> int:
    mid: str = args.message_id
    if not MESSAGE_ID_RE.match(mid):
        raise TapError(f"not a message id: {mid!r} (letters, digits, '-', '_')")
    emit = _printer(args.json)
    nc = await _connect(url, console)
    try:
        js = nc.jetstream()
        await _stream_last_seq(js)
        subject = message_filter(mid)
        info = await js.stream_info(EVT_STREAM, subjects_filter=subject)
        if not info.state.subjects:
            console.print(
                Text(f"jetpost: no events for message {mid}", style="red"), soft_wrap=True
            )
            return 1
        sub = await _subscribe(js, [subject], Start(DeliverPolicy.ALL, "from the beginning"))
        traced = False
        try:
            while True:
                try:
                    msg = await sub.next_msg(timeout=INSPECT_MSG_TIMEOUT)
                except nats.errors.TimeoutError:
                    raise TapError(f"timed out reading the events of {mid}") from None
                if not traced and (trace_id := trace_id_of(msg.headers)):
                    traced = True  # the trace id to look the message up by (on stderr)
                    console.print(f"trace {trace_id}", highlight=False)
                emit(msg)
                if msg.metadata.num_pending == 0:
                    return 0
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
    finally:
        await nc.close()

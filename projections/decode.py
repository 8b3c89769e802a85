"""Reading events for the read models at a fraction of pydantic's cost, with the same
verdict on what is readable.

The common events of a message's life are decoded by msgspec into mirrors of their
models: structs generated from the pydantic models' own fields (same names, types,
defaults, `extra="forbid"`), so a field added to a model is in its mirror too. A mirror
is never laxer than its model: what it cannot express exactly (a validator, a
constraint) it accepts only as the field's default (None, empty), and a datetime only
in the ISO form pydantic writes. Whatever a mirror refuses, whatever an upcaster
lifts, and every other event type, goes to `shared.events.parse_event`, the full parse,
which decides (its refusal makes a dead letter). A mirror reads like its model
(attributes, the model's own methods and properties), but it is not an instance of
it: code reading `Stored.event` goes by `event.type`, not `isinstance`.
"""

from __future__ import annotations

import re
import types
import typing
from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from pydantic import BaseModel

from shared.events import (
    UPCASTERS,
    Accepted,
    Attempted,
    Cancelled,
    Clicked,
    Deferred,
    Delivered,
    Event,
    Failed,
    Opened,
    Rejected,
    Rendered,
    RenderFailed,
    Resent,
    Unsubscribed,
    parse_event,
)

# The high-volume types of a message's life. The others (bounces, complaints,
# suppressions, webhook endpoints, schedules...) are rarer, and read as models.
MIRRORED: tuple[type[BaseModel], ...] = (
    Accepted, Rendered, Attempted, Delivered, Deferred, Opened, Clicked, Failed, Cancelled,
    Rejected, RenderFailed, Resent, Unsubscribed,
)  # fmt: skip
# pydantic's JSON parser refuses documents nested 200 deep, msgspec's goes further: an
# event whose mirror has a free-form field (`Any`, as `accepted`'s vars) and this many
# brackets (in strings too) could be that deep, and goes the full way
BRACKETS = 200
# The datetimes pydantic writes, which datetime.fromisoformat reads the same way
# (msgspec's own datetimes round past microseconds where pydantic truncates).
ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?(Z|[+-]\d\d:\d\d)?")
_EMPTY = Annotated[tuple[Any, ...], msgspec.Meta(max_length=0)]


class Unmirrored(TypeError):
    """A model (or field) with no exact msgspec mirror."""


def _type(tp: Any, top: bool) -> Any:
    """The msgspec type that accepts exactly what pydantic accepts for `tp`
    (`top`: a field of the event itself, where datetimes are converted after decoding)."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp in (str, int, float, bool, type(None), Any):
        return tp
    if tp is datetime and top:
        return str  # checked and converted after decoding (read_event)
    if origin is Literal and all(isinstance(a, str) for a in args):
        return tp
    if origin in (typing.Union, types.UnionType):
        mapped = tuple(_type(a, top) for a in args)
        return typing.Union[mapped]  # noqa: UP007 (built from a tuple)
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        return tuple[_type(args[0], False), ...]  # type: ignore[misc]
    if origin is dict and args and args[0] is str:
        return dict[str, _type(args[1], False)]  # type: ignore[misc]
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return mirror(tp, top=False)
    raise Unmirrored(f"{tp!r}")


def _methods(model: type[BaseModel]) -> dict[str, Any]:
    """The model's own methods and properties (e.g. `str(mailbox)`), for its mirror."""
    return {name: value for name, value in vars(model).items()
            if isinstance(value, property | types.FunctionType)
            and (not name.startswith("_") or name == "__str__")}  # fmt: skip


def mirror(model: type[BaseModel], top: bool = True) -> type[msgspec.Struct]:
    """`model` as a msgspec struct; Unmirrored if it has no exact mirror."""
    decorators = model.__pydantic_decorators__
    if decorators.validators or decorators.field_validators or decorators.model_validators:
        raise Unmirrored(f"{model.__name__}: validators")
    extra = model.model_config.get("extra") or "ignore"
    if extra == "allow":
        raise Unmirrored(f"{model.__name__}: extra fields kept")
    fields: list[tuple[str, Any, Any]] = []
    for name, info in model.model_fields.items():
        if info.alias or info.validation_alias:
            raise Unmirrored(f"{model.__name__}.{name}: alias")
        try:
            if info.metadata:
                raise Unmirrored(f"{model.__name__}.{name}: {info.metadata}")
            annotation = _type(info.annotation, top)
        except Unmirrored:
            # only the default: None, or an empty tuple
            if info.is_required() or info.default not in (None, ()):
                raise
            annotation = type(None) if info.default is None else _EMPTY
        if (info.is_required() or (top and name == "type")  # the union's discriminator
                or (annotation is str and info.default_factory is not None)):  # fmt: skip
            # (a time stamped when parsed, as `occurred_at` is when absent: the full parse)
            fields.append((name, annotation, msgspec.NODEFAULT))
        elif info.default_factory is not None:
            factory = info.default_factory
            fields.append((name, annotation, msgspec.field(default_factory=factory)))  # type: ignore[arg-type]
        else:
            fields.append((name, annotation, info.default))
    return msgspec.defstruct(
        model.__name__, fields, namespace=_methods(model),
        forbid_unknown_fields=extra == "forbid", module=__name__, kw_only=True, gc=False,
    )  # fmt: skip


def _free_form(tp: Any) -> bool:
    """Whether a value of `tp` can nest without bound (it holds an `Any`)."""
    if tp is Any:
        return True
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return any(_free_form(f.annotation) for f in tp.model_fields.values())
    return any(_free_form(a) for a in typing.get_args(tp))


class _Mirror:
    def __init__(self, model: type[BaseModel]) -> None:
        struct = mirror(model)
        self.decoder: msgspec.json.Decoder[Any] = msgspec.json.Decoder(struct)
        self.free_form = _free_form(model)
        # the schema versions of this type an upcaster lifts
        self.type: str = model.model_fields["type"].default
        self.upcast = {v for t, v in UPCASTERS if t == self.type}
        self.datetimes = [
            name for name, info in model.model_fields.items()
            if datetime in (info.annotation, *typing.get_args(info.annotation))
        ]  # fmt: skip


def _mirrors() -> dict[bytes, _Mirror]:
    """The mirrors by type; a model that has none (a validator added to it, a type
    msgspec cannot take) is read by the full parse, as every other type."""
    found = {}
    for model in MIRRORED:
        try:
            found[model.model_fields["type"].default.encode()] = _Mirror(model)
        except TypeError:  # Unmirrored, or msgspec refusing the struct
            continue
    return found


MIRRORS = _mirrors()


def parse_full(data: bytes) -> Event:
    """The full parse. What `parse_event`'s upcasting path meets with a TypeError or an
    AttributeError (JSON that is no object, an unhashable `type` or `v`) is unreadable
    too: a ValueError, so the reader records it instead of losing it."""
    try:
        return parse_event(data)
    except (TypeError, AttributeError) as exc:
        raise ValueError(f"not an event: {exc}") from None


def read_event(data: bytes, type_: bytes) -> Event:
    """The event in `data`, whose subject says it is of type `type_`: its mirror when it
    has one and the mirror takes it, else the model (ValueError/ValidationError as
    `parse_event` raises them)."""
    return read_event_at(data, type_)[0]


def read_event_at(data: bytes, type_: bytes) -> tuple[Event, str | None]:
    """`read_event`, and its `occurred_at` as the log spells it when its mirror read it
    (ISO 8601, which PostgreSQL reads as the same time as `isoformat()`; that costs
    0.8 µs an event), else None."""
    found = MIRRORS.get(type_)
    if found is None or (found.free_form and data.count(b"[") + data.count(b"{") >= BRACKETS):
        return parse_full(data), None
    try:
        event = found.decoder.decode(data)
        at = event.occurred_at
        for name in found.datetimes:
            value = getattr(event, name)
            if value is not None:
                if ISO.fullmatch(value) is None:
                    return parse_full(data), None
                setattr(event, name, datetime.fromisoformat(value))
    except (msgspec.ValidationError, msgspec.DecodeError, ValueError):
        return parse_full(data), None
    if event.v in found.upcast:
        return parse_full(data), None
    return event, at

"""What applying a JetStream definition to a live stream, consumer or bucket would
change, and which of those changes start-up may make by itself.

Pure: configs in, a plan out. Every service applies the definitions at start-up, so
one process started with other settings (an extra copy with the default
JETPOST_NATS_REPLICAS=1) must never scale a live R3 stream down, move it to other
storage or drop one of its subjects. Those differences are held back and logged;
`jetpost streams --apply` makes them on purpose.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Server-managed keys of a live config that are not ours to compare.
_IGNORED = frozenset({"metadata", "created", "name", "durable_name"})


@dataclass(frozen=True)
class Difference:
    """One field of one definition that differs from the live config."""

    what: str  # "stream MAIL_EVT", "consumer MAIL_EVT/sender", "bucket mail_idempotency"
    field: str
    live: Any
    wanted: Any
    why: str = ""  # for a held difference: why start-up does not apply it

    def __str__(self) -> str:
        if self.field == "created":
            return f"{self.what}: created"
        because = f" ({self.why})" if self.why else ""
        return f"{self.what}: {self.field} {self.live!r} -> {self.wanted!r}{because}"


@dataclass(frozen=True)
class Plan:
    what: str
    config: dict[str, Any]  # the live config with the changes applied
    changes: list[Difference] = field(default_factory=list)  # applied
    held: list[Difference] = field(default_factory=list)  # not applied

    @property
    def changed(self) -> bool:
        return bool(self.changes)


def _same(live: Any, wanted: Any) -> bool:
    if isinstance(live, list) and isinstance(wanted, list):
        return sorted(map(str, live)) == sorted(map(str, wanted))
    if live is None and wanted in (0, "", [], False):
        return True
    return bool(live == wanted)


def plan(what: str, live: dict[str, Any], wanted: dict[str, Any], *, force: bool = False) -> Plan:
    """Merge `wanted` (only the keys it sets) into `live`.

    Safe changes are applied; lowering `num_replicas`, changing `storage` and dropping
    `subjects` are held unless `force` (the operator asked for them). Storage is held
    even then: the server cannot change it in place.
    """
    config = dict(live)
    changes: list[Difference] = []
    held: list[Difference] = []
    for key, value in wanted.items():
        if key in _IGNORED or value is None or _same(live.get(key), value):
            continue
        current = live.get(key)
        if key == "storage":
            why = "the server cannot move a stream to other storage: back it up and restore it"
            held.append(Difference(what, key, current, value, why))
            continue
        if key == "num_replicas" and isinstance(current, int) and value < current and not force:
            why = "start-up never lowers replicas; `jetpost streams --apply` does"
            held.append(Difference(what, key, current, value, why))
            continue
        if key == "subjects" and isinstance(current, list):
            dropped = [s for s in current if s not in value]
            if dropped and not force:
                why = f"start-up never drops subjects ({', '.join(dropped)}); `--apply` does"
                held.append(Difference(what, key, current, value, why))
                added = [s for s in value if s not in current]
                if added:
                    config[key] = [*current, *added]
                    changes.append(Difference(what, key, current, config[key]))
                continue
        config[key] = value
        changes.append(Difference(what, key, current, value))
    return Plan(what, config, changes, held)
